"""The producer's side of queue mode: one entry appended to ``P queue``, with nothing but XADD
and XLEN, and WAIT when the URL asks for replicas (with Sentinel, ROLE too: the client checks
the server it found is the primary). A Redis user that may do only these, on that key, is
enough; see the README.

The queue is bounded by refusing, not trimming: XADD's MAXLEN would delete entries no control
plane has taken yet, silently. A producer first asks how many entries wait (settled entries are
deleted, so all of them do) and refuses when :data:`MAX_WAITING` do. Producers racing past the
check add at most one entry each.

An entry is "queued" once as many replicas as the URL's ``wait_replicas`` have it: XADD and
WAIT go in one pipeline, on one connection, so WAIT counts the replicas that have this XADD (no
other write is needed to make it the connection's latest). When that is not confirmed, the
entry may or may not be there: :class:`OutcomeUnknown`, which the producer answers by
appending the same entry again (the same event id: control planes store it once).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from transporter.store.base import StoreError, StoreUnavailable
from transporter.store.redis.connection import DEFAULT_TIMEOUT, RedisConnection
from transporter.store.redis.failover import last_server
from transporter.store.redis.keys import DEFAULT_PREFIX

MAX_WAITING = 100_000
"""Entries that may wait in the queue before producers are refused (no control plane takes
them: none runs on this Redis, or all are down)."""
_PIPELINE_COMMAND = re.compile(r"\(.*\) of pipeline", re.DOTALL)
"""coredis names a pipeline's failed command with its arguments: the entry, token included."""
_SECRET_LENGTH = 8
"""Field values at least this long are cut out of error texts (the token, the body)."""


class QueueFull(StoreError):
    def __init__(self, waiting: int) -> None:
        super().__init__(
            f"the queue holds {waiting} entries no control plane has taken (at most"
            f" {MAX_WAITING}): is a control plane running on this Redis?"
        )


class OutcomeUnknown(StoreUnavailable):
    """The entry may have been appended, or not (the XADD or the replicas' confirmation
    failed): append it again, or tell the user it may be queued."""


class QueueAppender(RedisConnection):
    """A connection that only appends to the queue. Open with :meth:`open` (never migrates
    the store's layout: it touches no key but the queue)."""

    async def append(self, fields: Mapping[str, str]) -> str:
        """Append one entry; its stream id, once the replicas the URL asks for have it.
        :class:`QueueFull` when too many wait, :class:`StoreUnavailable` when nothing was
        appended, :class:`OutcomeUnknown` when it may have been."""
        key = self._keys.prefix + "queue"
        self._migrated = True  # not the store's: only the queue key is ever touched
        async with self._guard(confirm=False):
            waiting = await self._client.xlen(key)
            wanted = await self._confirming.wanted()
        if waiting >= MAX_WAITING:
            raise QueueFull(waiting)
        timeout_ms = self._replication.wait_timeout_ms
        try:
            async with self._guard(confirm=False):
                if wanted == 0:
                    return str(await self._client.xadd(key, dict(fields)))
                async with self._client.pipeline(transaction=False) as pipe:
                    adding = pipe.xadd(key, dict(fields))
                    waiting_for = pipe.wait(wanted, timeout_ms)
                added, acked = await adding, await waiting_for
                server = last_server()
                refusal = None if acked < wanted else await self._confirming.refusal(server)
        except StoreError as exc:
            raise OutcomeUnknown(_redacted(str(exc), fields)) from None
        if acked < wanted:
            raise OutcomeUnknown(
                f"appended as {added}, but {acked} of {wanted} replica(s) had it after"
                f" {timeout_ms} ms: a failover may lose it"
            )
        if refusal is not None:
            raise OutcomeUnknown(f"appended as {added}, but {refusal}: a failover may lose it")
        return str(added)


def _redacted(text: str, fields: Mapping[str, str]) -> str:
    """``text`` without the entry's fields (a token must never reach a terminal or a log)."""
    text = _PIPELINE_COMMAND.sub("(…) of pipeline", text)
    for value in fields.values():
        if len(value) >= _SECRET_LENGTH:
            text = text.replace(value, "…")
    return text


@asynccontextmanager
async def open_appender(
    url: str, *, prefix: str = DEFAULT_PREFIX, call_timeout: float = DEFAULT_TIMEOUT
) -> AsyncIterator[QueueAppender]:
    """An appender to the queue on the Redis at ``url`` (the store's URL forms, TLS included)."""
    async with QueueAppender.open(url, prefix=prefix, call_timeout=call_timeout) as appender:
        yield appender
