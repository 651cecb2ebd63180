"""Serving the HTTP API: hypercorn's HTTP/1.1 protocol on our own listener.

We accept connections ourselves (as for the agent channel), so that every one of them is
bounded before hypercorn sees it (:mod:`.connections`: per process and per address, a timed TLS
handshake) and speaks the one protocol the API documents: HTTP/1.1, over TLS by default.
hypercorn would switch a connection to HTTP/2 when asked (ALPN, ``Upgrade: h2c``, or the
``PRI *`` preface); we offer only ``http/1.1`` in ALPN, and :class:`Http1Only` closes a
connection that would switch any other way. Every connection has the same timeouts: idle
between requests :data:`IDLE_TIMEOUT`, silent while a request is open :data:`READ_TIMEOUT`
(longer than the longest ``?wait=``); a connection its client has ended (closed or reset) is
let go at once (:class:`_Connection`).
"""

from __future__ import annotations

import logging
import math
import re
import ssl
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Final, cast

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import TrioSingleTask, WorkerContext
from hypercorn.typing import ConnectionState
from hypercorn.utils import wrap_app

from transporter.config.values import Address
from transporter.cp.connections import Gate, Limits, Throttled, peer_of
from transporter.protocol.identity import describe_tls_error

log = logging.getLogger(__name__)

IDLE_TIMEOUT: Final = 5.0
"""Seconds a connection may wait between requests."""
READ_TIMEOUT: Final = 75.0
"""Seconds a connection may send nothing while a request is open: past the longest long poll
(``GET /events/{id}?wait=60``), whose client sends nothing while it waits."""
GRACE: Final = 5.0
"""Seconds requests under way have to finish when the control plane stops."""
LIMITS: Final = Limits(total=1024, per_address=128, handshake_timeout=10.0)
"""The API port's bounds (probes and producers; agents are on their own port)."""
_PREFACE: Final = b"PRI * HTTP/2.0"
_SWITCH: Final = b"HTTP/1.1 101"
_ANSWER_HEAD: Final = re.compile(rb"HTTP/1\.1 [2-5]\d\d")


class StartupError(Exception):
    """The control plane cannot start: the message is one line saying what and how to fix it."""


class Http1Only(trio.abc.Stream):
    """A connection that may only ever carry HTTP/1.1 requests and JSON answers: one that
    opens with the HTTP/2 preface, or that hypercorn would answer in HTTP/2 (a ``101`` switch,
    or an HTTP/2 frame, which begins with a zero byte where our answers begin with text), is
    closed instead."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self._inner = stream
        self._first = b""
        self._held = b""
        """An answer's head, sent with the next write (:meth:`send_all`)."""

    @property
    def transport_stream(self) -> Any:
        """The TCP stream under any TLS (hypercorn reads the peer's address from it)."""
        return getattr(self._inner, "transport_stream", self._inner)

    @property
    def socket(self) -> Any:
        return self.transport_stream.socket

    def __getattr__(self, name: str) -> Any:
        if name in ("do_handshake", "selected_alpn_protocol"):  # a TLS stream's, else none
            return getattr(self._inner, name)
        raise AttributeError(name)

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        data = bytes(await self._inner.receive_some(max_bytes))
        if len(self._first) < len(_PREFACE) and data:
            self._first += data[: len(_PREFACE) - len(self._first)]
            if self._first == _PREFACE:
                await self._refuse()
        return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Each write as hypercorn makes it, but an answer's head, which goes out with what
        follows it: hypercorn writes a head, its body and its end (nothing, for a body framed
        by its length) one by one, three TLS records and syscalls where one will do. Every
        answer is followed by its end, so a held head always goes (an informational ``1xx``,
        whose client waits for it, is never held)."""
        head = bytes(data[: len(_SWITCH)])
        if head.startswith(_SWITCH) or head[:1] == b"\x00":
            await self._refuse()
        if self._held:
            data, self._held = self._held + bytes(data), b""
        elif _ANSWER_HEAD.match(head) and bytes(data[-4:]) == b"\r\n\r\n":
            self._held = bytes(data)
            return
        if data:
            await self._inner.send_all(data)

    async def _refuse(self) -> None:
        await trio.aclose_forcefully(self._inner)
        raise trio.BrokenResourceError("HTTP/2 is not served here")

    async def wait_send_all_might_not_block(self) -> None:
        await self._inner.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        send_eof = getattr(self._inner, "send_eof", None)
        if send_eof is None:  # hypercorn takes this for a TLS stream, which has none
            raise AttributeError("send_eof")
        await send_eof()

    async def aclose(self) -> None:
        await self._inner.aclose()


def api_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """TLS 1.2 or later, HTTP/1.1 only (ALPN), the control plane's serving certificate."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    context.set_alpn_protocols(["http/1.1"])
    return context


def _config() -> HypercornConfig:
    hc = HypercornConfig()
    hc.accesslog = None
    # Through our logging setup (one format, one level), not hypercorn's own stderr handler.
    hc.errorlog = logging.getLogger("hypercorn.error")
    hc.graceful_timeout = GRACE
    hc.include_server_header = False
    hc.keep_alive_timeout = IDLE_TIMEOUT
    hc.read_timeout = int(READ_TIMEOUT)
    hc.alpn_protocols = ["http/1.1"]
    return hc


async def open_listeners(address: Address, flag: str) -> list[trio.SocketListener]:
    """Listeners on ``address``; :class:`StartupError` naming ``flag`` when it cannot be had."""
    try:
        return await trio.open_tcp_listeners(address.port, host=address.host or None)
    except OSError as exc:
        raise StartupError(f"cannot listen on {address} ({flag}): {exc.strerror or exc}") from None


class ApiServer:
    """The API on one address until ``shutdown``; :meth:`serve` gives its URLs when started."""

    def __init__(
        self,
        app: Any,
        address: Address,
        *,
        tls: ssl.SSLContext | None,
        limits: Limits | None = None,
    ) -> None:
        self.config = _config()
        self.app = wrap_app(app, self.config.wsgi_max_body_size, "asgi")
        self.address = address
        self.tls = tls
        self.gate = Gate(f"API {address}", limits or LIMITS)
        self._handshakes = Throttled(log)
        self._context = WorkerContext(None)
        self._state: dict[str, Any] = {}

    async def serve(
        self,
        shutdown: trio.Event,
        *,
        task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        listeners = await open_listeners(self.address, "--listen")
        scheme = "http" if self.tls is None else "https"
        urls = [f"{scheme}://{_bound(listener)}" for listener in listeners]
        lifespan = Lifespan(self.app, self.config, self._state)
        async with trio.open_nursery() as lifespan_nursery:
            await lifespan_nursery.start(lifespan.handle_lifespan)
            await lifespan.wait_for_startup()
            async with trio.open_nursery() as connections:
                async with trio.open_nursery() as accepting:
                    accepting.start_soon(
                        partial(
                            trio.serve_listeners,
                            self._connection,
                            listeners,
                            handler_nursery=connections,
                        )
                    )
                    task_status.started(urls)
                    await shutdown.wait()
                    accepting.cancel_scope.cancel()
                # hypercorn's signal to its connections: finish what is under way, then close.
                await self._context.terminated.set()
                connections.cancel_scope.deadline = trio.current_time() + GRACE
            await lifespan.wait_for_shutdown()
            lifespan_nursery.cancel_scope.cancel()

    async def _connection(self, stream: trio.SocketStream) -> None:
        peer = peer_of(stream)
        if not self.gate.enter(peer):
            await trio.aclose_forcefully(stream)
            return
        try:
            served: trio.abc.Stream | None = stream
            if self.tls is not None:
                served = await self._handshake(stream, peer)
            if served is None:
                return
            state = ConnectionState(self._state.copy())
            wrapped = Http1Only(served)
            # hypercorn types its stream as TLS; it takes a plain one the same way (duck typing)
            await _Connection(self.app, self.config, self._context, state, cast(Any, wrapped))
        finally:
            self.gate.leave(peer)

    async def _handshake(
        self, stream: trio.SocketStream, peer: str
    ) -> trio.SSLStream[trio.SocketStream] | None:
        assert self.tls is not None
        tls = trio.SSLStream(stream, self.tls, server_side=True, https_compatible=True)
        limit = self.gate.limits.handshake_timeout
        try:
            with trio.fail_after(limit):
                await tls.do_handshake()
        except (trio.BrokenResourceError, trio.TooSlowError) as exc:
            why = (
                describe_tls_error(exc)
                if isinstance(exc, trio.BrokenResourceError)
                else (f"no TLS handshake within {limit:g} s")
            )
            self._handshakes.warning("API %s: TLS handshake failed: %s", peer, why)
            await trio.aclose_forcefully(stream)
            return None
        return tls


class _Connection(TCPServer):
    """hypercorn's connection, let go as soon as its client has closed or reset its side:
    hypercorn waits for its keep-alive timer before it lets a connection go, so a client that
    closes each connection after its answer (as most do) held one open here for
    :data:`IDLE_TIMEOUT` each, and soon the address's whole allowance (:data:`LIMITS`). A
    request still under way ends as before. Its keep-alive timer is :class:`_IdleTimer`."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._timer = _IdleTimer(
            self.config.keep_alive_timeout, self.context.terminated, self._initiate_server_close
        )
        self.idle_task = cast(TrioSingleTask, self._timer)  # what hypercorn calls of it

    async def _read_data(self) -> None:
        try:
            await super()._read_data()
        finally:
            self._timer.end()


class _IdleTimer:
    """hypercorn's keep-alive timer, in place of its ``TrioSingleTask``, which started a task
    for every request (and cancelled the last one): here one task per connection waits, and
    each request only moves its deadline. Idle (:meth:`restart`, at the connection's start and
    after each answer): the connection is closed at the deadline, or at once when the server
    stops. A request under way (:meth:`stop`): nothing closes it. Never armed again once
    :meth:`end` has stopped it (the connection's reading ended)."""

    def __init__(self, timeout: float, terminated: Any, close: Callable[[], Awaitable[None]]):
        self._timeout = timeout
        self._terminated = terminated
        """hypercorn's: set when the server stops."""
        self._close = close
        self._armed = False
        self._deadline = math.inf
        self._scope: trio.CancelScope | None = None
        self._rearmed = trio.Event()
        self._running = False
        self.ended = False

    async def restart(self, task_group: Any, action: Any) -> None:
        """Idle from now (``action``, hypercorn's own timer, is not used)."""
        if self.ended:
            return
        self._armed, self._deadline = True, trio.current_time() + self._timeout
        self._rearmed.set()
        if self._scope is not None:
            self._scope.deadline = self._deadline
        if not self._running:
            self._running = True
            task_group._nursery.start_soon(self._watch)  # where hypercorn starts its own

    async def stop(self) -> None:
        """A request under way."""
        self._armed, self._deadline = False, math.inf
        if self._scope is not None:
            self._scope.deadline = math.inf

    def _ended(self) -> bool:
        return self.ended

    def end(self) -> None:
        self.ended, self._armed = True, False
        if self._scope is not None:
            self._scope.cancel()

    async def _watch(self) -> None:
        while not self._ended():  # also when it ended before this task began
            with trio.CancelScope(deadline=self._deadline) as self._scope:
                if self._armed or not self._terminated.is_set():
                    await self._terminated.wait()
                else:  # the server stops while a request is under way: its end arms
                    self._rearmed = trio.Event()
                    await self._rearmed.wait()
            self._scope = None
            if self._ended():
                return
            late = trio.current_time() >= self._deadline
            if self._armed and (late or self._terminated.is_set()):
                with trio.CancelScope(shield=True):
                    await self._close()
                return


def _bound(listener: trio.SocketListener) -> str:
    host, port = listener.socket.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
