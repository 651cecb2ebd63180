"""Dialling the control plane: TCP, then TLS (the bundle's certificate; the control plane's CA
as the only one trusted), then the WebSocket upgrade, each step failing fast with a reason a
person can act on; and the :class:`Channel` that carries messages once connected.

This is the agent's transport edge: every socket, TLS and WebSocket error becomes one of the
channel's own (:class:`DialError` before the connection is up, :class:`ChannelClosed` after),
as :mod:`transporter.kube` does for the API server's, so the session above handles two kinds
of failure, not a dozen libraries' exceptions.

trio-websocket's client waits for the upgrade's answer even when the connection has broken
under it (the control plane refused this agent's certificate: TLS 1.3 says so only after the
client's side of the handshake is done). So the stream is watched here, and a broken one ends
the wait with what TLS said (``certificate expired``, ``unknown ca``, ...), rather than a
timeout that says nothing.
"""

from __future__ import annotations

import math
import os
import ssl
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import cast
from urllib.parse import urlsplit

import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    HandshakeError,
    WebSocketConnection,
    wrap_client_stream,
)

from transporter.protocol.identity import describe_tls_error


class ChannelError(Exception):
    """The channel to the control plane failed; the message says how, in a line."""


class DialError(ChannelError):
    """The connection could not be set up; the message says at which step and why."""


class ChannelClosed(ChannelError):
    """The connection ended (closed by the control plane, or broken under us)."""


class DeadConnection(ChannelError):
    """Raised in a :func:`connect` block when the peer stopped answering: the connection is
    then closed at once, without waiting for a close handshake nobody will answer."""


class Channel:
    """A connected WebSocket, in the channel's terms: text messages, pings, and
    :class:`ChannelClosed` whichever way it ends."""

    def __init__(self, ws: WebSocketConnection, *, resumed: bool = False) -> None:
        self._ws = ws
        self.resumed = resumed
        """Whether TLS resumed the session of an earlier connection (no full handshake)."""

    async def send(self, text: str) -> None:
        try:
            await self._ws.send_message(text)
        except (ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise _closed(exc) from exc

    async def receive(self) -> str | bytes:
        try:
            return await self._ws.get_message()
        except (ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise _closed(exc) from exc

    async def beat(self) -> None:
        """An unsolicited pong: a heartbeat that asks for no answer."""
        try:
            await self._ws.pong()
        except (ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise _closed(exc) from exc

    async def ping(self) -> None:
        """Return once the control plane answered a ping (bound it with a cancel scope)."""
        try:
            await self._ws.ping()
        except (ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise _closed(exc) from exc


def _closed(exc: BaseException) -> ChannelClosed:
    reason = getattr(exc, "reason", None)
    if reason is None:
        return ChannelClosed(f"the connection broke: {describe_tls_error(exc)}")
    said = f": {reason.reason}" if getattr(reason, "reason", None) else ""
    return ChannelClosed(f"the control plane closed the connection ({reason.code}{said})")


CLOSE_WAIT = 5.0
"""Seconds a clean close waits for the control plane's side of the close handshake."""
STOPPING_CLOSE_WAIT = 0.2
"""Seconds to send the close frame when the agent stops: nobody reads the answer then."""


def _dead(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return exc.subgroup(DeadConnection) is not None
    return isinstance(exc, DeadConnection)


class _Watched(trio.abc.HalfCloseableStream):
    """A stream that remembers how it broke, and says so at once."""

    def __init__(self, inner: trio.SocketStream | trio.SSLStream[trio.SocketStream]) -> None:
        self.inner = inner
        self.broken = trio.Event()
        self.error: BaseException | None = None

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        try:
            data = await self.inner.receive_some(max_bytes)
        except trio.BrokenResourceError as exc:
            self._break(exc)
            raise
        if not data:  # the far side closed
            self.broken.set()
        return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        try:
            await self.inner.send_all(data)
        except trio.BrokenResourceError as exc:
            self._break(exc)
            raise

    async def send_eof(self) -> None:
        if isinstance(self.inner, trio.SocketStream):
            await self.inner.send_eof()

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self.inner.aclose()

    def _break(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self.broken.set()


@asynccontextmanager
async def connect(
    url: str,
    *,
    ssl_context: ssl.SSLContext | None,
    max_message_size: int,
    connect_timeout: float,
    answer_timeout: float | None = None,
) -> AsyncIterator[Channel]:
    """A connection to ``url`` for the block: TCP within ``connect_timeout``, then TLS and the
    WebSocket upgrade within ``answer_timeout`` (default: as long). :class:`DialError` (as
    itself) when it cannot be. Closed at the end, its socket too, whichever side ended it.

    Two bounds, since a host that does not answer is dead (move on to the next URL soon), but
    a control plane that took the connection is alive, and may be busy letting thousands of
    agents back in after a restart: each that gives up is a handshake wasted and an agent
    sent into a longer backoff."""
    up = False
    answer = connect_timeout if answer_timeout is None else answer_timeout
    try:
        async with trio.open_nursery() as nursery:
            ws, stream = await _dial(
                nursery, url, ssl_context, max_message_size, connect_timeout, answer
            )
            up = True
            close_wait = CLOSE_WAIT
            try:
                yield Channel(ws, resumed=_resumed(stream))
            except BaseException as exc:
                if _dead(exc):
                    close_wait = 0.0
                raise
            finally:
                # The close waits for the control plane's answer, which the connection's reader
                # takes in; when the agent stops (we are cancelled) that reader is cancelled
                # too and no answer can come: the close frame is sent, the socket closed.
                if trio.current_effective_deadline() == -math.inf:
                    close_wait = min(close_wait, STOPPING_CLOSE_WAIT)
                with trio.CancelScope(shield=True):
                    with trio.move_on_after(close_wait):
                        await ws.aclose()
                    # trio-websocket leaves the socket open when the far side closed first.
                    await trio.aclose_forcefully(stream)
                nursery.cancel_scope.cancel()
    except BaseException as exc:
        # trio-websocket's reader task raises an HTTP refusal, so it comes out of the nursery.
        problem = None if up else _dial_problem(_leaf(exc), urlsplit(url).netloc, connect_timeout)
        if problem is None:
            raise
        raise problem from exc


def _resumed(stream: _Watched) -> bool:
    inner = stream.inner
    return isinstance(inner, trio.SSLStream) and bool(inner.session_reused)


def _leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _dial_problem(exc: BaseException, where: str, connect_timeout: float) -> DialError | None:
    """The :class:`DialError` that says what ``exc`` means, or ``None`` to let it through."""
    if isinstance(exc, DialError):
        return exc
    if isinstance(exc, trio.TooSlowError):
        return DialError(f"no connection to {where} within {connect_timeout:g} s")
    if isinstance(exc, ConnectionRejected):
        body = (exc.body or b"").decode(errors="replace").strip()[:500]
        said = f": {body}" if body else ""
        return DialError(f"refused with HTTP {exc.status_code}{said}")
    if isinstance(exc, HandshakeError):
        return DialError(f"the WebSocket upgrade with {where} failed: {exc}")
    if isinstance(exc, OSError):
        return DialError(f"cannot connect to {where}: {_os_reason(exc)}")
    return None


def _os_reason(exc: OSError) -> str:
    """What the system said (trio's error for the addresses it tried carries each one's)."""
    cause: BaseException | None = exc.__cause__
    while isinstance(cause, BaseExceptionGroup):
        cause = cause.exceptions[0]
    for error in (cause, exc):
        if isinstance(error, OSError) and error.errno:
            return os.strerror(error.errno)
    return str(exc)


async def _dial(
    nursery: trio.Nursery,
    url: str,
    ssl_context: ssl.SSLContext | None,
    max_message_size: int,
    connect_timeout: float,
    answer_timeout: float,
) -> tuple[WebSocketConnection, _Watched]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    secure = parts.scheme == "wss"
    port = parts.port or (443 if secure else 80)
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if secure and ssl_context is None:
        raise DialError("a wss:// URL needs the bundle's TLS settings")
    with trio.fail_after(connect_timeout):
        tcp = await trio.open_tcp_stream(host, port)
    watched: _Watched | None = None
    try:
        with trio.move_on_after(answer_timeout):
            stream: trio.SocketStream | trio.SSLStream[trio.SocketStream] = tcp
            if ssl_context is not None and secure:
                tls = trio.SSLStream(tcp, ssl_context, server_hostname=host, https_compatible=True)
                resume(tls, ssl_context, url)
                try:
                    await tls.do_handshake()
                except trio.BrokenResourceError as exc:
                    reason = describe_tls_error(exc)
                    raise DialError(f"TLS handshake with {host}:{port}: {reason}") from None
                stream = tls
            watched = _Watched(stream)
            ws = await _upgrade(nursery, watched, host, resource, max_message_size, secure)
            if ssl_context is not None and isinstance(stream, trio.SSLStream):
                keep_session(stream, ssl_context, url)
            return ws, watched
        raise DialError(
            f"{host}:{port} took the connection but did not finish the TLS handshake and the"
            f" WebSocket upgrade within {answer_timeout:g} s"
        )
    except BaseException:
        await trio.aclose_forcefully(watched or tcp)
        raise


_SESSIONS: weakref.WeakKeyDictionary[ssl.SSLContext, tuple[str, ssl.SSLSession]] = (
    weakref.WeakKeyDictionary()
)
"""The last TLS session of each agent's context (a context is one agent's bundle), with the
URL it was made with: kept only as long as the context."""


def resume(tls: trio.SSLStream[trio.SocketStream], context: ssl.SSLContext, url: str) -> None:
    """Offer the session kept from this context's last connection to ``url`` (a ticket), so
    that the control plane that issued it resumes it without a full handshake: no certificate
    sent nor checked, no signature, on either side. One that issued no ticket, or forgot its
    key (a restart), makes a full handshake as if none was offered."""
    kept = _SESSIONS.get(context)
    if kept is not None and kept[0] == url:
        tls.session = kept[1]


def keep_session(tls: trio.SSLStream[trio.SocketStream], context: ssl.SSLContext, url: str) -> None:
    """Keep the connection's session for the next dial: after the upgrade, when TLS 1.3's
    ticket (sent after the handshake) has been read."""
    session = tls.session
    if session is not None and session.has_ticket:
        _SESSIONS[context] = (url, session)


async def _upgrade(
    nursery: trio.Nursery,
    watched: _Watched,
    host: str,
    resource: str,
    max_message_size: int,
    secure: bool,
) -> WebSocketConnection:
    connected: list[WebSocketConnection] = []  # stays empty when the stream broke first
    async with trio.open_nursery() as waiting:

        async def watch() -> None:
            await watched.broken.wait()
            waiting.cancel_scope.cancel()

        waiting.start_soon(watch)
        connection = await wrap_client_stream(
            nursery,
            cast(trio.SocketStream, watched),  # any stream will do; its type is only hinted
            host,
            resource,
            max_message_size=max_message_size,
        )
        connected.append(connection)
        waiting.cancel_scope.cancel()
    if connected:
        return connected[0]
    if watched.error is not None:
        reason = describe_tls_error(watched.error)
        if secure and "alert" in reason:  # TLS 1.3 tells the refusal after the handshake
            raise DialError(
                f"the control plane did not accept this agent's certificate ({reason}):"
                " another CA's, expired, or not yet valid; its log says which"
            )
        raise DialError(f"the connection broke during the WebSocket upgrade: {reason}")
    if secure:
        raise DialError(
            "the control plane closed the connection after the TLS handshake: it did not"
            " accept this agent's certificate (another CA's, expired, or not yet valid;"
            " its log says which)"
        )
    raise DialError(
        "the control plane closed the connection before the WebSocket upgrade (does it"
        " serve wss:// only?)"
    )
