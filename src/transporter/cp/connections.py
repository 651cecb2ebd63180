"""Bounds on who may hold a connection open, before anything of theirs is read: at most so many
in all, and so many from one address, on each port of the control plane.

A connection over either bound is closed at once, without a TLS handshake (the expensive part
of a flood) or a byte read. Refusals are logged within a budget per port (:class:`Throttled`),
with the count of those left out, so that a flood cannot fill the log either.
"""

from __future__ import annotations

import errno
import logging
import os
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Final

import attrs
import trio

log = logging.getLogger(__name__)

ACCEPT_CAPACITY_ERRNOS: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
"""What ``accept`` says when this process or the host is out of something: waited out."""
ACCEPT_PAUSE: Final = 0.1
"""Seconds before accepting again after one of those (trio's serve_listeners waits as long)."""
LOG_BURST: Final = 20
LOG_RATE: Final = 1.0
"""Log lines about refused connections or failed handshakes, per port: a burst, then a rate."""


@attrs.frozen(kw_only=True)
class Limits:
    """The bounds of one port."""

    total: int
    """Connections held at once (agents' included); past it new ones are closed at once."""
    per_address: int
    """Connections held at once from one address."""
    handshake_timeout: float = 10.0
    """Seconds a TLS handshake may take."""


class Throttled:
    """Log lines at most :data:`LOG_BURST` at once, then :data:`LOG_RATE` a second; the others
    are counted, and the count said in the next line written."""

    def __init__(self, logger: logging.Logger) -> None:
        self._log = logger
        self._allowance = float(LOG_BURST)
        self._last: float | None = None
        self._left_out = 0

    def warning(self, message: str, *args: object) -> None:
        now = trio.current_time()
        since = 0.0 if self._last is None else now - self._last
        self._last = now
        self._allowance = min(LOG_BURST, self._allowance + since * LOG_RATE)
        if self._allowance < 1:
            self._left_out += 1
            return
        self._allowance -= 1
        if self._left_out:
            message += " (and %d more like it, not logged one by one)"
            args = (*args, self._left_out)
            self._left_out = 0
        self._log.warning(message, *args)


class Gate:
    """Counts the connections of one port; :meth:`enter` says whether one more may stay."""

    def __init__(self, name: str, limits: Limits) -> None:
        self.name = name
        self.limits = limits
        self.open = 0
        self._by_address: Counter[str] = Counter()
        self.refused = 0
        self.churn = 0
        """Connections let in or refused so far (the memory trim watches it)."""
        self._refusals = Throttled(log)
        self._room: trio.Event | None = None

    async def room(self) -> None:
        """Until one more connection may stay (the agent channel's accept loop waits here
        rather than letting connections in only to close them)."""
        while self.open >= self.limits.total:
            if self._room is None:
                self._room = trio.Event()
            await self._room.wait()

    def enter(self, address: str) -> bool:
        """Take a place for a connection from ``address``; ``False``: close it now (and do not
        call :meth:`leave`)."""
        self.churn += 1
        if self.open >= self.limits.total:
            why = f"{self.limits.total} connections open"
        elif self._by_address[address] >= self.limits.per_address:
            why = f"{self.limits.per_address} connections open from that address"
        else:
            self.open += 1
            self._by_address[address] += 1
            return True
        self.refused += 1
        self._refusals.warning("%s: connection from %s closed at once: %s", self.name, address, why)
        return False

    def leave(self, address: str) -> None:
        self.open -= 1
        self._by_address[address] -= 1
        if self._by_address[address] <= 0:
            del self._by_address[address]
        if self._room is not None and self.open < self.limits.total:
            self._room.set()
            self._room = None


def peer_of(stream: trio.SocketStream) -> str:
    """The remote host of a TCP stream (not the port: limits are per address)."""
    try:
        return str(stream.socket.getpeername()[0])
    except OSError:
        return "(gone)"


class Turns:
    """TLS handshakes under way at once: at most ``running``; the connections let in past
    that wait their turn, first come first served, for at most ``wait`` seconds, and are then
    closed (the agent dials again after its jittered backoff).

    A handshake is CPU work that nothing else can share: a few at once finish as fast as many,
    and each sooner, before the agent's own connect timeout gives up on it (work lost). A
    reconnect storm is so served at the rate the CPU allows, in order, with no agent sent
    into a longer backoff only because it came a moment after the others.
    """

    def __init__(self, *, running: int, wait: float) -> None:
        self.running = running
        self.wait = wait
        self._slots = trio.Semaphore(running)
        self.waiting = 0
        """Connections waiting for their turn now."""

    async def take(self) -> bool:
        """Wait for a turn: ``False`` when none came within :attr:`wait` (no :meth:`give_back`
        then)."""
        self.waiting += 1
        try:
            with trio.move_on_after(self.wait):
                await self._slots.acquire()
                return True
            return False
        finally:
            self.waiting -= 1

    def give_back(self) -> None:
        self._slots.release()


async def accept_within(
    gate: Gate | None,
    listener: trio.SocketListener,
    serve: Callable[[trio.SocketStream], Awaitable[None]],
    nursery: trio.Nursery,
) -> None:
    """Accept connections on ``listener`` while ``gate`` has room, each served by a task of
    ``nursery`` (entered in ``gate`` already; ``serve`` leaves it). At the bound, accepting
    waits: the connections still coming wait in the kernel's backlog (and their SYNs after
    it), not closed into their agents' backoff. A reconnect storm of 10,000 agents was refused
    8,000 to 18,000 times when each was let in only to be closed. Past the bound from one
    address, a connection is still closed at once, before any TLS work."""
    failures = Throttled(log)
    async with listener:  # closed when the server stops
        while True:
            if gate is not None:
                await gate.room()
            try:
                stream = await listener.accept()
            except OSError as exc:
                if exc.errno not in ACCEPT_CAPACITY_ERRNOS:
                    raise
                why = os.strerror(exc.errno or 0)
                failures.warning("accept failed (%s); trying again in %g s", why, ACCEPT_PAUSE)
                await trio.sleep(ACCEPT_PAUSE)
                continue
            # Counted at once, before its task runs: the next look for room sees it.
            if gate is not None and not gate.enter(peer_of(stream)):
                stream.socket.close()
                continue
            nursery.start_soon(serve, stream)
