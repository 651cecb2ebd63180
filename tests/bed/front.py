"""An HTTPS front for a real API server that can answer in its place: 429s, 503s, slow answers.

It serves TLS with the API server's own serving certificate (issued by the test bed's CA for
127.0.0.1), so a kubeconfig pointed at the front still verifies the server it talks to. Every
request is forwarded to the real API server on a connection of its own, authenticated with the
cluster's admin client certificate, unless a queued :class:`Fault` matches it: then the front
answers with the fault's status and a Kubernetes ``Status`` body instead, or holds the request
for a while before forwarding it (a slow server), or ends the connection instead of answering
(a server that went away). It can also answer in chunks, close every connection after its
answer without saying so (a server that closes idle connections), or send bodies slowly. Every
request is logged as a :class:`Seen` with when it came, on which connection, and when it was
answered, for tests to count and time.
"""

from __future__ import annotations

import itertools
import json
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import attrs
import h11
import trio
import yaml

from tests.bed.kube import Cluster
from tests.bed.listen import reset_on_close, serve_on_loopback

MAX_READ = 64 * 1024
HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"content-length"})
REASONS = {
    429: ("TooManyRequests", "Too many requests, please try again later."),
    503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
}


def pointed_at(cluster: Cluster, server: str, folder: Path) -> Path:
    """A copy of the cluster's kubeconfig (same CA and credentials) for another address."""
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = server
    path = folder / f"{cluster.name}-via-{server.rsplit(':', 1)[1]}.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


@attrs.define
class Fault:
    """What to do instead of forwarding the next ``times`` requests (``None``: all of them)."""

    status: int
    """Answer with this status; 0: forward (after ``delay``)."""
    times: int | None
    method: str | None
    """Only requests with this method; ``None``: any."""
    retry_after: str | Callable[[], str] | None = None
    """The ``Retry-After`` header, or a function that makes it when the answer is sent."""
    message: str = ""
    delay: float = 0.0
    """Seconds to hold the request before answering or forwarding it."""
    gate: trio.Event | None = None
    """Hold the request until this is set, then forward it."""
    location: str | None = None
    """The ``Location`` header of the answer (a redirect's)."""
    cut: Literal["", "close", "reset"] = ""
    """Instead of answering, end the connection: ``close`` once the request has come whole
    (FIN), ``reset`` as soon as its head has come, its body unread (RST)."""

    def matches(self, method: str) -> bool:
        return self.method is None or self.method == method


@attrs.define
class Seen:
    """One request that reached the front."""

    method: str
    path: str
    connection: int
    """Which connection it came on, numbered from 1 in the order they were accepted."""
    arrived: float
    """``trio.current_time()`` when its headers came."""
    arrived_wall: float
    """:func:`time.time` then (to compare with an HTTP-date)."""
    answered: float | None = None
    """``trio.current_time()`` just before the answer was sent (so the client cannot have had
    it earlier); ``None`` while pending, or when the client had gone."""
    status: int = 0
    faked: bool = False
    """Answered by a fault rather than by the API server."""
    retry_after: str | None = None
    """The ``Retry-After`` header a fault answered with."""


class FaultFront:
    """Listens on 127.0.0.1:``port`` (a free one) once started with ``nursery.start(serve)``."""

    def __init__(self, cluster: Cluster, *, tls: bool = True) -> None:
        self.cluster = cluster
        self.tls = tls
        """``False``: plain HTTP (an ``http://`` server), still forwarded over TLS."""
        self.upstream = int(cluster.server.rsplit(":", 1)[1])
        self.port = 0
        self.seen: list[Seen] = []
        self.open = 0
        """Connections open now."""
        self.closed = 0
        """Connections that have ended, whichever side ended them."""
        self.chunk = 0
        """Answer in chunks of this many bytes (``Transfer-Encoding: chunked``); 0: in one."""
        self.close_after_answer = False
        """Close each connection once it is answered, though it was kept alive."""
        self.trickle = 0.0
        """Seconds between the bytes of an answer's body; 0: all at once."""
        self._faults: list[Fault] = []
        self._numbers = itertools.count(1)
        self._change = trio.Event()
        certs = cluster.certs
        self._server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._server_tls.load_cert_chain(certs.serving_cert, certs.serving_key)
        self._client_tls = ssl.create_default_context(cafile=str(certs.ca_cert))
        self._client_tls.load_cert_chain(certs.admin_cert, certs.admin_key)

    @property
    def server(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def kubeconfig(self, folder: Path) -> Path:
        return pointed_at(self.cluster, self.server, folder)

    def answer(
        self,
        status: int,
        *,
        times: int | None = None,
        method: str | None = None,
        retry_after: str | Callable[[], str] | None = None,
        message: str = "",
        location: str | None = None,
    ) -> None:
        """Answer the next ``times`` matching requests (``None``: all) with ``status``."""
        self._faults.append(Fault(status, times, method, retry_after, message, location=location))

    def hold(self, gate: trio.Event, *, times: int | None, method: str | None = None) -> None:
        """Hold the next ``times`` matching requests until ``gate`` is set, then forward them."""
        self._faults.append(Fault(0, times, method, gate=gate))

    def cut(
        self, how: Literal["close", "reset"], *, times: int | None = 1, method: str | None = None
    ) -> None:
        """End the connection of the next ``times`` matching requests instead of answering."""
        self._faults.append(Fault(0, times, method, cut=how))

    def delay(self, seconds: float, *, times: int | None = 1, method: str | None = None) -> None:
        """Hold the next ``times`` matching requests for ``seconds``, then forward them."""
        self._faults.append(Fault(0, times, method, delay=seconds))

    def heal(self) -> None:
        """Forget every fault: forward everything from now on."""
        self._faults.clear()

    def requests(self, method: str) -> list[Seen]:
        return [seen for seen in self.seen if seen.method == method]

    async def wait_for(self, method: str, count: int) -> None:
        """Until ``count`` requests with ``method`` have come."""
        await self.wait_until(lambda: len(self.requests(method)) >= count)

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        """Until ``condition()`` holds, tried again whenever a request comes or a connection
        opens or ends."""
        while not condition():
            await self._change.wait()

    def _changed(self) -> None:
        self._change.set()
        self._change = trio.Event()

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await serve_on_loopback(self, self._handle, task_status=task_status)

    def _take(self, method: str) -> Fault | None:
        for fault in self._faults:
            if fault.matches(method):
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                return fault
        return None

    async def _handle(self, tcp: trio.SocketStream) -> None:
        stream = self._stream(tcp)
        conn = h11.Connection(h11.SERVER)
        number = next(self._numbers)
        self.open += 1
        self._changed()
        try:
            while await self._exchange(tcp, stream, conn, number):
                conn.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
            return  # the client went away (e.g. gave up waiting), or spoke no HTTP/1.1
        finally:
            await trio.aclose_forcefully(stream)
            self.open -= 1
            self.closed += 1
            self._changed()

    def _stream(self, tcp: trio.SocketStream) -> trio.abc.Stream:
        if not self.tls:
            return tcp
        return trio.SSLStream(tcp, self._server_tls, server_side=True, https_compatible=True)

    async def _exchange(
        self, tcp: trio.SocketStream, stream: trio.abc.Stream, conn: h11.Connection, number: int
    ) -> bool:
        """One request and its answer; whether the connection goes on."""
        request = await _next(stream, conn)
        if not isinstance(request, h11.Request):
            return False  # the client closed the connection between requests
        method, target = request.method.decode(), request.target.decode()
        seen = Seen(method, target, number, trio.current_time(), time.time())
        fault = self._take(method)
        if fault is not None and fault.cut == "reset":
            reset_on_close(tcp)
            self.seen.append(seen)
            self._changed()
            return False
        body = await _body(stream, conn)
        self.seen.append(seen)
        self._changed()
        if fault is not None and fault.cut == "close":
            return False
        status, headers, data = await self._respond(request, body, seen, fault)
        # Noted before it is sent: a client in this process may act on it before we resume.
        seen.answered, seen.status = trio.current_time(), status
        await self._answer(stream, conn, status, headers, data)
        return conn.our_state is not h11.MUST_CLOSE and not self.close_after_answer

    async def _answer(
        self,
        stream: trio.abc.Stream,
        conn: h11.Connection,
        status: int,
        headers: list[tuple[bytes, bytes]],
        data: bytes,
    ) -> None:
        if not self.chunk:
            headers = [*headers, (b"content-length", str(len(data)).encode())]
        await _send_data(stream, conn, h11.Response(status_code=status, headers=headers))
        step = 1 if self.trickle else self.chunk or len(data)
        for start in range(0, len(data), step or 1):
            if self.trickle:
                await trio.sleep(self.trickle)
            await _send_data(stream, conn, h11.Data(data=data[start : start + step]))
        await _send_data(stream, conn, h11.EndOfMessage())

    async def _respond(
        self, request: h11.Request, body: bytes, seen: Seen, fault: Fault | None
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        if fault is not None and fault.delay:
            await trio.sleep(fault.delay)
        if fault is not None and fault.gate is not None:
            await fault.gate.wait()
        if fault is None or not fault.status:
            return await self._forward(request, body)
        seen.faked = True
        reason, default = REASONS.get(fault.status, ("InternalError", "an injected failure"))
        status = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": fault.message or default,
            "reason": reason,
            "code": fault.status,
        }
        headers = [(b"content-type", b"application/json")]
        retry_after = fault.retry_after() if callable(fault.retry_after) else fault.retry_after
        if retry_after is not None:
            headers.append((b"retry-after", retry_after.encode()))
            seen.retry_after = retry_after
        if fault.location is not None:
            headers.append((b"location", fault.location.encode()))
        return fault.status, headers, json.dumps(status).encode()

    async def _forward(
        self, request: h11.Request, body: bytes
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """The real API server's answer, over a connection of its own."""
        headers = [
            (name, value) for name, value in request.headers if name not in HOP_BY_HOP | {b"host"}
        ]
        headers += [(b"host", f"127.0.0.1:{self.upstream}".encode()), (b"connection", b"close")]
        if body or request.method in (b"POST", b"PUT", b"PATCH"):
            headers.append((b"content-length", str(len(body)).encode()))
        tcp = await trio.open_tcp_stream("127.0.0.1", self.upstream)
        stream = trio.SSLStream(
            tcp, self._client_tls, server_hostname="127.0.0.1", https_compatible=True
        )
        async with stream:
            conn = h11.Connection(h11.CLIENT)
            upward = h11.Request(method=request.method, target=request.target, headers=headers)
            await _send(stream, conn, upward, body)
            response = await _next(stream, conn)
            while isinstance(response, h11.InformationalResponse):
                response = await _next(stream, conn)
            if not isinstance(response, h11.Response):
                raise h11.RemoteProtocolError(f"the API server answered {response!r}")
            data = await _body(stream, conn)
        kept = [(name, value) for name, value in response.headers if name not in HOP_BY_HOP]
        return response.status_code, kept, data


async def _next(stream: trio.abc.Stream, conn: h11.Connection) -> object:
    """The next h11 event, reading as much as it needs."""
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        conn.receive_data(bytes(await stream.receive_some(MAX_READ)))  # b'': closed


async def _body(stream: trio.abc.Stream, conn: h11.Connection) -> bytes:
    chunks: list[bytes] = []
    while True:
        event = await _next(stream, conn)
        if isinstance(event, h11.Data):
            chunks.append(bytes(event.data))
        elif isinstance(event, h11.EndOfMessage):
            return b"".join(chunks)
        else:
            raise h11.RemoteProtocolError(f"unexpected {event!r} in a message body")


async def _send(
    stream: trio.abc.Stream,
    conn: h11.Connection,
    head: h11.Request | h11.Response,
    body: bytes,
) -> None:
    await _send_data(stream, conn, head)
    if body:
        await _send_data(stream, conn, h11.Data(data=body))
    await _send_data(stream, conn, h11.EndOfMessage())


async def _send_data(
    stream: trio.abc.Stream,
    conn: h11.Connection,
    event: h11.Request | h11.Response | h11.Data | h11.EndOfMessage,
) -> None:
    data = conn.send(event)
    if data:
        await stream.send_all(data)
