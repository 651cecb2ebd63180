"""A TCP fault proxy between an agent and the control plane: a test switches faults at any time.

Modes (:class:`Mode`), switched with the methods of the same names:

- ``pass_through()``: bytes are forwarded as they come.
- ``delay(seconds)``: every chunk is forwarded ``seconds`` after it arrived, in each direction
  (latency, not a lower throughput: chunks queue up behind each other, in order).
- ``drop()``: nothing is forwarded and nobody is told: the link goes silent, as when a cable is
  pulled or a NAT forgets the flow. Bytes that arrive on open connections are read and thrown
  away, no FIN and no RST is sent to either side: both see a half-open connection. A connection
  that lost bytes stays silent for good (its stream has a hole), even after the drop is lifted;
  it ends when both of its ends have closed, or by :meth:`FaultProxy.cut`. New connections are
  accepted and left unanswered; they are held, unread, until the drop is lifted, and then go on
  like new ones (like a SYN that is retransmitted until the network heals).
- ``refuse()``: new connections are closed at once with an RST (connection reset); the open
  ones carry on.

:meth:`FaultProxy.cut` closes every open connection now, both of its sides, with a FIN or (with
``rst=True``, SO_LINGER 0) an RST; the mode stays what it was.

:attr:`FaultProxy.counts` says what happened; :meth:`FaultProxy.wait_until` waits for it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import attrs
import trio

from tests.bed.listen import reset_on_close, serve_on_loopback

_QUEUE = 64
"""Chunks in flight per direction of one connection before reading stops (backpressure)."""


class Mode(enum.Enum):
    PASS = "pass"
    DELAY = "delay"
    DROP = "drop"
    REFUSE = "refuse"


@attrs.define
class Counts:
    """What the proxy has seen since it started."""

    accepted: int = 0
    """Connections accepted (including the refused ones)."""
    refused: int = 0
    """Connections closed at once because the proxy was refusing."""
    bytes_up: int = 0
    """Bytes forwarded from clients to the upstream."""
    bytes_down: int = 0
    """Bytes forwarded from the upstream to clients."""
    discarded: int = 0
    """Bytes read and thrown away while dropping (both directions)."""
    client_ends: int = 0
    """Times a client closed (FIN or RST) its side of a forwarded connection."""
    upstream_ends: int = 0
    """Times the upstream closed (FIN or RST) its side of a forwarded connection."""


@attrs.define(eq=False)
class _Link:
    """One client connection and, once dialled, its upstream connection."""

    client: trio.SocketStream
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    upstream: trio.SocketStream | None = None
    lost: bool = False
    """Bytes were thrown away: this connection never forwards again."""
    rst: bool = False
    """Close both sides with an RST."""
    closed: trio.Event = attrs.field(factory=trio.Event)


class FaultProxy:
    """Listens on 127.0.0.1 on a port chosen by the OS and forwards to ``host``:``port``."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.port = 0
        """Where the proxy listens, once :meth:`serve` has started."""
        self.mode = Mode.PASS
        self.latency = 0.0
        """Seconds added to every chunk in each direction (set by :meth:`delay`)."""
        self.counts = Counts()
        self._links: set[_Link] = set()
        self._changed = trio.Event()

    @classmethod
    def to_url(cls, url: str) -> FaultProxy:
        """A proxy in front of the server of ``url`` (e.g. ``ws://127.0.0.1:8443/ws``)."""
        parts = urlsplit(url)
        assert parts.hostname is not None and parts.port is not None, url
        return cls(parts.hostname, parts.port)

    def url(self, url: str) -> str:
        """``url`` (of the upstream) with the proxy's port: same host name, so that TLS still
        checks the upstream's certificate against it (the proxy only listens on 127.0.0.1)."""
        parts = urlsplit(url)
        host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
        return urlunsplit(parts._replace(netloc=f"{host}:{self.port}"))

    @property
    def open_connections(self) -> int:
        return len(self._links)

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; ``started()`` once :attr:`port` is set."""
        await serve_on_loopback(self, self._handle, task_status=task_status)

    # --- faults -------------------------------------------------------------------------------

    def pass_through(self) -> None:
        self._switch(Mode.PASS, 0.0)

    def delay(self, seconds: float) -> None:
        self._switch(Mode.DELAY, seconds)

    def drop(self) -> None:
        self._switch(Mode.DROP, self.latency)

    def refuse(self) -> None:
        self._switch(Mode.REFUSE, self.latency)

    async def cut(self, *, rst: bool = False) -> None:
        """Close every open connection, both sides (FIN, or RST with ``rst``); returns once
        they are closed."""
        links = list(self._links)
        for link in links:
            link.rst = link.rst or rst
            link.scope.cancel()
        for link in links:
            await link.closed.wait()

    async def wait_until(self, predicate: Callable[[Counts], bool]) -> None:
        """Until ``predicate(self.counts)`` holds. Bound it with a cancel scope."""
        while not predicate(self.counts):
            await self._changed.wait()

    def _switch(self, mode: Mode, latency: float) -> None:
        self.mode = mode
        self.latency = latency
        self._touch()

    def _touch(self) -> None:
        """Wake whoever waits for a change of mode or counts."""
        self._changed.set()
        self._changed = trio.Event()

    # --- one connection -----------------------------------------------------------------------

    async def _handle(self, client: trio.SocketStream) -> None:
        link = _Link(client)
        self._links.add(link)
        self.counts.accepted += 1
        self._touch()
        try:
            with link.scope:
                while self.mode is Mode.DROP:  # held, unread, until the drop is lifted
                    await self._changed.wait()
                if self.mode is Mode.REFUSE:
                    self.counts.refused += 1
                    link.rst = True
                    return
                try:
                    link.upstream = await trio.open_tcp_stream(*self.upstream)
                except OSError:
                    link.rst = True  # as if the upstream's RST came through
                    return
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._direction, link, client, link.upstream, True)
                    nursery.start_soon(self._direction, link, link.upstream, client, False)
        finally:
            for stream in (client, link.upstream):
                if stream is not None:
                    if link.rst:
                        reset_on_close(stream)
                    stream.socket.close()  # no checkpoint: cancelled or not, both get closed
            self._links.discard(link)
            link.closed.set()
            self._touch()

    async def _direction(
        self, link: _Link, source: trio.SocketStream, sink: trio.SocketStream, up: bool
    ) -> None:
        """Forward one direction: a reader stamps each chunk with its time to leave, this
        task sends it then (or throws it away)."""
        send, receive = trio.open_memory_channel[tuple[float, bytes | bytearray]](_QUEUE)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._read, link, source, send, up)
            async with receive:
                async for due, chunk in receive:
                    if self.mode is not Mode.DROP and not link.lost:
                        await trio.sleep_until(due)
                    if self.mode is Mode.DROP or link.lost:
                        link.lost = True
                        self.counts.discarded += len(chunk)
                        self._touch()
                        continue
                    try:
                        await sink.send_all(chunk)
                    except trio.BrokenResourceError:
                        link.rst = True
                        link.scope.cancel()
                        return
                    if up:
                        self.counts.bytes_up += len(chunk)
                    else:
                        self.counts.bytes_down += len(chunk)
                    self._touch()
            if self.mode is Mode.DROP:
                link.lost = True  # a FIN that does not get through leaves the link silent too
            if not link.lost:
                try:
                    await sink.send_eof()  # a half-close goes through, as TCP does
                except trio.BrokenResourceError:
                    link.scope.cancel()

    async def _read(
        self,
        link: _Link,
        source: trio.SocketStream,
        send: trio.MemorySendChannel[tuple[float, bytes | bytearray]],
        up: bool,
    ) -> None:
        async with send:
            try:
                async for chunk in source:
                    await send.send((trio.current_time() + self.latency, chunk))
            except trio.BrokenResourceError:
                # An RST from this side: passed on as an RST, unless the link is silent.
                if self.mode is Mode.DROP:
                    link.lost = True
                if not link.lost:
                    link.rst = True
                    link.scope.cancel()
            if up:
                self.counts.client_ends += 1
            else:
                self.counts.upstream_ends += 1
            self._touch()
