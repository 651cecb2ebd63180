"""A coredis connection pool that never loses a place.

coredis's pool (6.9) holds ``max_connections`` places (64 by default) in a queue: a caller takes
one, with the connection in it or ``None`` (room for a new one), and gives it back when done. It
lost a place each time

- a new connection could not be made before its connect began: behind Sentinels, none of them
  named a primary (in a failover the primary is ``o_down``, so every call for a second or two);
- a connection died while a caller held it (a pipeline, a ``WAIT``: the store's confirmation
  of every write), or was closed under it (the pool's ``disconnect()``, which the store calls
  when the Sentinels name another primary): given back unusable, it was dropped, and its place
  with it.

Once all were lost, every call waited for a place forever: after a double failover in CI, each
of the control plane's calls said "Redis did not answer within 10 s" until it was restarted,
though the new primary was up with its replica in step. Here the place comes back in each of
those cases.

A caller that waits for a place waits here, not in coredis's queue: that one holds its lock
while it waits, and a waiter cancelled (a call's timeout) left its wake-up in the queue, so the
next place given back woke nobody while the caller behind it waited on, holding the lock.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import trio
from coredis._concurrency import QueueFull
from coredis.exceptions import RedisError
from coredis.pool import ConnectionPool

log = logging.getLogger(__name__)


class KeptPlaces(ConnectionPool[Any]):
    """:class:`coredis.pool.ConnectionPool` with its places given back on every path."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._freed = trio.Event()
        """Set when a place is given back, then replaced."""

    async def get_connection(self, **_: Any) -> Any:
        with trio.fail_after(self.timeout) if self.timeout else contextlib.nullcontext():
            connection = await self._take_place()
        try:
            if connection is None or not connection.reusable:
                if connection is not None:
                    connection.invalidate()
                connection = await self._construct_connection()
                failed = await self.task_group.start(self._run, connection)
                if failed is not None:
                    raise failed
                self.statistics.connection_created(connection)
                self._online_connections.add(connection)
        except BaseException:
            self._give_back(None)
            raise
        self.statistics.connection_leased(connection)
        return connection

    def release(self, connection: Any) -> None:
        self.statistics.connection_released(connection)
        self._give_back(connection if connection.usable else None)

    def keep_only(self, server: str) -> None:
        """Close the pool's connections to any other server than ``server`` (``host:port``):
        the next calls are made where it says. Those to ``server`` stay."""
        for connection in list(self._online_connections):
            if str(connection.location) != server:
                connection.invalidate()

    async def _take_place(self) -> Any:
        """A place: a connection to use again, or ``None`` (room for a new one). Waits while
        there is none; a waiter cancelled leaves nothing behind."""
        places = self._available_connections
        while places.empty():
            await self._freed.wait()
        return places.get_nowait()

    async def _run(self, connection: Any, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """The connection's life (coredis's own, but for the place, which the pool's callers
        give back)."""
        try:
            await connection.run(task_status=task_status)
        except RedisError as error:  # a connect that failed: its caller raises it
            task_status.started(error)
        finally:
            self._online_connections.discard(connection)
            if connection in self._available_connections:  # dead while in the pool
                self._available_connections.remove(connection)
                self._give_back(None)

    def _give_back(self, connection: Any) -> None:
        """A place back in the pool: with ``connection`` in it, or empty (``None``)."""
        try:
            if connection is None:
                self._available_connections.append_nowait(None)
            else:
                self._available_connections.put_nowait(connection)
        except QueueFull:  # more places than the pool has: a bug, not to go unseen
            log.warning("Redis pool: a place given back twice (%r)", connection)
            if connection is not None:
                connection.invalidate()
        self._freed.set()
        self._freed = trio.Event()


__all__ = ["KeptPlaces"]
