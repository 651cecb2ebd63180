"""Dialling the control plane: TCP, then TLS (the bundle's certificate; the control plane's CA
as the only one trusted), then the WebSocket upgrade, each step failing fast with a reason a
person can act on; and the :class:`Channel` that carries messages once connected.

The upgrade and the frames are written here (:mod:`.upgrade`, :mod:`.websocket`), not a
library's: trio-websocket, wsproto and h11 (and what trio-websocket imports to read trio's
version) cost an idle agent about 1.8 MiB (issue 15).

This is the agent's transport edge: every socket, TLS and WebSocket error becomes one of the
channel's own (:class:`DialError` before the connection is up, :class:`ChannelClosed` after),
as :mod:`transporter.kube` does for the API server's, so the session above handles two kinds
of failure, not a dozen libraries' exceptions.

TLS 1.3 tells the client that the control plane refused its certificate only after the
client's side of the handshake is done: as the upgrade's answer is waited for. A stream that
breaks then ends the wait with what TLS said (``certificate expired``, ``unknown ca``, ...),
named as the control plane refusing the certificate, rather than a timeout that says nothing.
"""

from __future__ import annotations

import math
import os
import ssl
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import trio

from transporter.agent import upgrade
from transporter.agent.websocket import (
    Channel,
    ChannelClosed,
    ChannelError,
    DialError,
    Stream,
)
from transporter.protocol import frames
from transporter.protocol.identity import describe_tls_error

__all__ = [
    "Channel",
    "ChannelClosed",
    "ChannelError",
    "DeadConnection",
    "DialError",
    "connect",
    "keep_session",
    "resume",
]


class DeadConnection(ChannelError):
    """Raised in a :func:`connect` block when the peer stopped answering: the connection is
    then closed at once, without waiting for a close handshake nobody will answer."""


CLOSE_WAIT = 5.0
"""Seconds a clean close waits for the control plane's side of the close handshake."""
STOPPING_CLOSE_WAIT = 0.2
"""Seconds a close waits for the control plane's answer when the agent stops."""


def _dead(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return exc.subgroup(DeadConnection) is not None
    return isinstance(exc, DeadConnection)


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
            channel = await _dial(url, ssl_context, max_message_size, connect_timeout, answer)
            up = True
            reading = trio.CancelScope(shield=True)  # the reader outlives the block's end
            nursery.start_soon(_read, channel, reading)
            close_wait = CLOSE_WAIT
            try:
                yield channel
            except BaseException as exc:
                if _dead(exc):
                    close_wait = 0.0
                raise
            finally:
                # The close waits for the control plane's answer, which the connection's reader
                # takes in (shielded: it reads the answer when the agent stops too, within
                # a shorter bound); then the socket is closed, and the reader stopped.
                if trio.current_effective_deadline() == -math.inf:
                    close_wait = min(close_wait, STOPPING_CLOSE_WAIT)
                with trio.CancelScope(shield=True):
                    with trio.move_on_after(close_wait):
                        await channel.aclose()
                    await trio.aclose_forcefully(channel.stream)
                reading.cancel()
                nursery.cancel_scope.cancel()
    except BaseException as exc:
        problem = None if up else _dial_problem(_leaf(exc), urlsplit(url).netloc, connect_timeout)
        if problem is None:
            raise
        raise problem from exc


async def _read(channel: Channel, scope: trio.CancelScope) -> None:
    with scope:
        await channel.run()


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
    url: str,
    ssl_context: ssl.SSLContext | None,
    max_message_size: int,
    connect_timeout: float,
    answer_timeout: float,
) -> Channel:
    parts = urlsplit(url)
    host = parts.hostname or ""
    secure = parts.scheme == "wss"
    port = parts.port or (443 if secure else 80)
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if secure and ssl_context is None:
        raise DialError("a wss:// URL needs the bundle's TLS settings")
    with trio.fail_after(connect_timeout):
        tcp = await trio.open_tcp_stream(host, port)
    stream: Stream = tcp
    try:
        with trio.move_on_after(answer_timeout):
            if ssl_context is not None and secure:
                tls = trio.SSLStream(tcp, ssl_context, server_hostname=host, https_compatible=True)
                resume(tls, ssl_context, url)
                try:
                    await tls.do_handshake()
                except trio.BrokenResourceError as exc:
                    reason = describe_tls_error(exc)
                    raise DialError(f"TLS handshake with {host}:{port}: {reason}") from None
                stream = tls
            reader = frames.Reader(max_message_size, masked=False)
            reader.feed(await _upgrade(stream, _host_header(parts.netloc), resource, secure))
            resumed = False
            if ssl_context is not None and isinstance(stream, trio.SSLStream):
                keep_session(stream, ssl_context, url)
                resumed = bool(stream.session_reused)
            return Channel(stream, reader, resumed=resumed)
        raise DialError(
            f"{host}:{port} took the connection but did not finish the TLS handshake and the"
            f" WebSocket upgrade within {answer_timeout:g} s"
        )
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise


def _host_header(netloc: str) -> str:
    """The ``Host`` header for a URL's ``netloc``: its host and port, with no user info."""
    return netloc.rpartition("@")[2]


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


async def _upgrade(stream: Stream, host: str, resource: str, secure: bool) -> bytes:
    """The upgrade (:func:`.upgrade.upgrade`), a stream that broke or ended first said as what
    it means: with TLS, most likely the control plane refusing this agent's certificate."""
    try:
        return await upgrade.upgrade(stream, host, resource, host)
    except upgrade.Broken as broken:
        if broken.error is not None:
            reason = describe_tls_error(broken.error)
            if secure and "alert" in reason:  # TLS 1.3 tells the refusal after the handshake
                raise DialError(
                    f"the control plane did not accept this agent's certificate ({reason}):"
                    " another CA's, expired, or not yet valid; its log says which"
                ) from None
            raise DialError(
                f"the connection broke during the WebSocket upgrade: {reason}"
            ) from None
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
