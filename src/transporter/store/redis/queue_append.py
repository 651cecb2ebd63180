"""The producer's side of queue mode: one entry appended to ``P queue``, with nothing but XADD
and XLEN (a Redis user that may do only these, on that key, is enough; see the README).

The queue is bounded by refusing, not trimming: XADD's MAXLEN would delete entries no control
plane has taken yet, silently. A producer first asks how many entries wait (settled entries are
deleted, so all of them do) and refuses when :data:`MAX_WAITING` do. Producers racing past the
check add at most one entry each.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from transporter.store.base import StoreError
from transporter.store.redis.connection import DEFAULT_TIMEOUT, RedisConnection
from transporter.store.redis.keys import DEFAULT_PREFIX

MAX_WAITING = 100_000
"""Entries that may wait in the queue before producers are refused (no control plane takes
them: none runs on this Redis, or all are down)."""


class QueueFull(StoreError):
    def __init__(self, waiting: int) -> None:
        super().__init__(
            f"the queue holds {waiting} entries no control plane has taken (at most"
            f" {MAX_WAITING}): is a control plane running on this Redis?"
        )


class QueueAppender(RedisConnection):
    """A connection that only appends to the queue. Open with :meth:`open` (never migrates
    the store's layout: it touches no key but the queue)."""

    async def append(self, fields: Mapping[str, str]) -> str:
        """Append one entry; its stream id. :class:`QueueFull` when too many wait."""
        key = self._keys.prefix + "queue"
        self._migrated = True  # not the store's: only the queue key is ever touched
        async with self._guard():
            waiting = await self._client.xlen(key)
            if waiting >= MAX_WAITING:
                raise QueueFull(waiting)
            added = await self._client.xadd(key, dict(fields))
        return str(added)


@asynccontextmanager
async def open_appender(
    url: str, *, prefix: str = DEFAULT_PREFIX, call_timeout: float = DEFAULT_TIMEOUT
) -> AsyncIterator[QueueAppender]:
    """An appender to the queue on the Redis at ``url`` (the store's URL forms, TLS included)."""
    async with QueueAppender.open(url, prefix=prefix, call_timeout=call_timeout) as appender:
        yield appender
