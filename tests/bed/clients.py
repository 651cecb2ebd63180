"""Raw clients: HTTP requests with any body, and an agent that sends whatever it is told to."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import attrs
import trio
from trio_websocket import WebSocketConnection, wrap_client_stream

from tests.bed import pki as test_pki
from tests.bed.pki import TestPki
from transporter.protocol import codec

CHANNEL_LIMIT = 64 * 1024
"""``max_message_bytes`` of the badinput control plane's agent channel."""
ANSWER_TIMEOUT = 10.0
"""A bound on waiting for an answer that must come (the test fails rather than hangs)."""


@attrs.frozen
class Answer:
    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = attrs.field(factory=dict)
    """Lower-case names."""

    @property
    def json(self) -> Any:
        return json.loads(self.body)


async def http(
    url: str,
    method: str = "GET",
    body: bytes | str | Any | None = None,
    *,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> Answer:
    """One request in a worker thread; ``body`` is sent as is (bytes or text) or as JSON.
    ``headers``: more headers (``Authorization``)."""
    if body is None or isinstance(body, bytes):
        data = body
    elif isinstance(body, str):
        data = body.encode("utf-8", "surrogatepass")
    else:
        data = json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": content_type, **(headers or {})}
    )

    def call() -> Answer:
        try:
            with urllib.request.urlopen(request, timeout=60, context=api_context()) as answer:
                headers = {k.lower(): v for k, v in answer.headers.items()}
                return Answer(
                    answer.status, answer.read(), headers.get("content-type", ""), headers
                )
        except urllib.error.HTTPError as exc:
            with exc:
                headers = {k.lower(): v for k, v in exc.headers.items()}
                return Answer(exc.code, exc.read(), headers.get("content-type", ""), headers)

    return await trio.to_thread.run_sync(call)


def api_context(pki: TestPki | None = None) -> ssl.SSLContext:
    """A client's TLS context that trusts control planes of the test run's CA (or ``pki``'s)."""
    return ssl.create_default_context(cafile=str((pki or test_pki.shared()).ca_cert))


async def raw_stream(base_url: str, *, pki: TestPki | None = None) -> trio.abc.Stream:
    """A connection to the API at ``base_url`` for writing HTTP by hand (TLS on https://)."""
    parts = urlsplit(base_url)
    assert parts.hostname is not None and parts.port is not None
    tcp = await trio.open_tcp_stream(parts.hostname, parts.port)
    if parts.scheme != "https":
        return tcp
    tls = trio.SSLStream(tcp, api_context(pki), server_hostname=parts.hostname)
    await tls.do_handshake()
    return tls


def assert_error(
    answer: Answer, status: int, error: str, field: str | None = None
) -> dict[str, Any]:
    """``answer`` is ``status`` with the JSON error body ``{error, message, field?}``."""
    assert answer.status == status, answer.body[:500]
    assert answer.content_type.startswith("application/json")
    data: dict[str, Any] = answer.json
    assert data["error"] == error, data
    assert isinstance(data["message"], str) and data["message"]
    assert set(data) <= {"error", "message", "field"}
    if field is not None:
        assert data.get("field") == field, data
    return data


@attrs.define
class RawAgent:
    """One WebSocket connection to the agent channel, driven by hand.

    On a ``wss://`` URL the connection is opened with a client certificate (from the test run's
    CA, :mod:`tests.bed.pki`) for the id of the first :meth:`register`, so it is opened when the
    first message is sent: for ``identity`` when given, else the id registered, else (another
    message first) ``raw-agent``. On ``ws://`` it is opened at once.
    """

    url: str
    nursery: trio.Nursery
    max_message_size: int
    identity: str | None = None
    pki: TestPki | None = None
    _ws: WebSocketConnection | None = None
    _stream: trio.SocketStream | trio.SSLStream[trio.SocketStream] | None = None
    _delivered: list[dict[str, Any]] = attrs.field(factory=list)
    """Events of a ``deliveries`` message not yet taken by :meth:`next_delivery`."""

    @property
    def ws(self) -> WebSocketConnection:
        assert self._ws is not None, "nothing sent yet: the connection is not open"
        return self._ws

    async def open(self, agent_id: str | None = None) -> WebSocketConnection:
        if self._ws is not None:
            return self._ws
        parts = urlsplit(self.url)
        assert parts.hostname is not None and parts.port is not None
        tcp = await trio.open_tcp_stream(parts.hostname, parts.port)
        stream: trio.SocketStream | trio.SSLStream[trio.SocketStream] = tcp
        if parts.scheme == "wss":
            pki = self.pki or test_pki.shared()
            context = pki.client_context(self.identity or agent_id or "raw-agent")
            stream = trio.SSLStream(tcp, context, server_hostname=parts.hostname)
        self._stream = stream
        self._ws = await wrap_client_stream(
            self.nursery, stream, parts.hostname, parts.path, max_message_size=self.max_message_size
        )
        return self._ws

    async def close(self) -> None:
        if self._ws is not None:
            with trio.move_on_after(ANSWER_TIMEOUT, shield=True):
                await self._ws.aclose()
        if self._stream is not None:
            await trio.aclose_forcefully(self._stream)

    async def send(self, message: str | bytes | dict[str, Any]) -> None:
        ws = self._ws or await self.open()
        await ws.send_message(message if isinstance(message, str | bytes) else json.dumps(message))

    async def receive(self) -> dict[str, Any]:
        """The next message from the control plane (it must come)."""
        with trio.fail_after(ANSWER_TIMEOUT):
            text = await self.ws.get_message()
        data: dict[str, Any] = json.loads(text)
        return data

    async def expect_error(self, code: str) -> str:
        answer = await self.receive()
        assert answer["type"] == "error", answer
        assert answer["code"] == code, answer
        message: str = answer["message"]
        assert message
        return message

    async def register(self, agent_id: str, protocol: int | None = 1) -> dict[str, Any]:
        """Register as ``agent_id`` speaking ``protocol`` (``None``: not said)."""
        await self.open(agent_id)
        said = {} if protocol is None else {"protocol": protocol}
        await self.send({"type": "register", "agent": {"id": agent_id}, **said})
        welcome = await self.receive()
        assert welcome["type"] == "welcome", welcome
        return welcome

    async def next_delivery(self) -> dict[str, Any]:
        """The next event delivered, alone (``deliver``) or in a ``deliveries`` batch (protocol
        2); heartbeat-free: the control plane sends nothing else unasked."""
        if not self._delivered:
            message = await self.receive()
            assert message["type"] in ("deliver", "deliveries"), message
            self._delivered = [message["event"]] if "event" in message else message["events"]
        event: dict[str, Any] = self._delivered.pop(0)
        return event

    async def report(self, event_id: str, seq: int, state: str, **extra: Any) -> None:
        await self.send(
            {"type": "status", "event_id": event_id, "seq": seq, "at": 1.0, "state": state, **extra}
        )


@asynccontextmanager
async def raw_agent(
    url: str,
    *,
    max_message_size: int = codec.MAX_MESSAGE_BYTES,
    identity: str | None = None,
    pki: TestPki | None = None,
) -> AsyncIterator[RawAgent]:
    """A connection with the agent's own receive limit (``codec.MAX_MESSAGE_BYTES``).

    On a TCP stream of our own, closed at the end whatever happened: trio-websocket's client
    leaves its socket open when the server closed the WebSocket first.
    """
    async with trio.open_nursery() as nursery:
        agent = RawAgent(url, nursery, max_message_size, identity, pki)
        if url.startswith("ws://"):
            await agent.open()
        try:
            yield agent
        finally:
            await agent.close()
            nursery.cancel_scope.cancel()
