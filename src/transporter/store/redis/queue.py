"""The Redis store's :class:`~transporter.store.queue_store.QueueStore`: queue mode on Redis
Streams.

``P queue`` is the stream producers append to (XADD only: see the README's ACL user), read by
the consumer group ``cp`` that every control-plane replica joins under a name of its own.
An entry is settled by one script, atomically: acknowledged and deleted when its event is stored
(its token is no longer in the data set; the AOF keeps what was written until it is rewritten:
see the README), or, when refused, its dead letter appended to ``P queue:dead`` too. That
stream keeps about :data:`DEAD_LETTERS_KEPT` letters: MAXLEN ``~`` drops the oldest.
"""

from __future__ import annotations

import contextlib
import functools
import re
from typing import Any, cast

import attrs
from coredis.exceptions import StreamDuplicateConsumerGroupError
from coredis.response.types import StreamEntry

from transporter.store.base import InvalidCursor
from transporter.store.paging import clamp_limit
from transporter.store.queue_store import DeadLetter, DeadLetterPage, QueueEntry
from transporter.store.redis.connection import RedisConnection

GROUP = "cp"
"""The one consumer group: every replica reads through it, so each entry goes to one."""
DEAD_LETTERS_KEPT = 10_000
"""About how many dead letters the stream keeps (the oldest go first)."""
SCAN = 1000
"""Dead letters looked at for one page of a single token's."""
CLAIM_ROUNDS = 10
"""XAUTOCLAIM calls one claim makes at most (each looks at ``count`` pending entries)."""
SKEW_MS = 60_000
"""Milliseconds before an entry's own time its letter is looked for from (servers' clocks differ
after a failover)."""
PENDING_LOOKED_AT = 1000
"""Pending entries of the claiming consumer read (XPENDING) for the delivery counts of those
it just claimed (it holds at most a few batches)."""

_STREAM_ID = re.compile(r"\A[0-9]{1,20}-[0-9]{1,20}\Z")

# KEYS: queue. ARGV: group, entry id. Returns how many were acknowledged (0: settled already).
DONE = """
local acked = redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return acked
"""

# KEYS: queue. ARGV: group, consumer. Deletes the consumer only if it holds no entry (a consumer
# deleted with entries would leave them in the stream for no one). Returns 1 if deleted.
FORGET = """
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) > 0 then return 0 end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return 1
"""

# KEYS: queue, queue:dead. ARGV: group, entry id, letters kept, then the letter's fields and
# values. The letter is written only by whoever acknowledges the entry: an entry two replicas
# refused (one had claimed it from the other) leaves one letter.
DEAD = """
local acked = redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
if acked == 1 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', unpack(ARGV, 4))
end
return acked
"""


class RedisQueue(RedisConnection):
    @property
    def _queue(self) -> str:
        return self._keys.prefix + "queue"

    @property
    def _dead(self) -> str:
        return self._keys.prefix + "queue:dead"

    async def queue_prepare(self) -> None:
        async with self._guard():
            with contextlib.suppress(StreamDuplicateConsumerGroupError):
                await self._client.xgroup_create(self._queue, GROUP, identifier="0", mkstream=True)

    async def queue_read(self, consumer: str, *, count: int, block: float) -> list[QueueEntry]:
        # Not waited for by replicas: a read entry that a failover forgets is read again (it
        # is acknowledged only once its event is stored, and that write is waited for).
        async with self._guard(confirm=False):
            found = await self._client.xreadgroup(
                GROUP, consumer, {self._queue: ">"}, count=count, block=max(1, int(block * 1000))
            )
        return [_entry(item) for items in (found or {}).values() for item in items]

    async def queue_claim(self, consumer: str, *, idle: float, count: int) -> list[QueueEntry]:
        claimed: list[QueueEntry] = []
        start = "0-0"
        for _ in range(CLAIM_ROUNDS):
            async with self._guard(confirm=False):  # likewise: a lost claim is claimed again
                reply = await self._client.xautoclaim(
                    self._queue, GROUP, consumer, int(idle * 1000), start, count=count
                )
            start = str(reply[0])
            taken = [_entry(item) for item in cast(Any, reply[1]) if item is not None]
            claimed += await self._delivered(consumer, taken)
            if start == "0-0" or len(claimed) >= count:
                break
        return claimed

    async def _delivered(self, consumer: str, taken: list[QueueEntry]) -> list[QueueEntry]:
        """``taken`` with their delivery counts (XAUTOCLAIM does not say them); one not found
        (settled meanwhile) counts as delivered twice, as any claimed entry was at least."""
        if not taken:
            return []
        async with self._guard(confirm=False):
            pending = await self._client.xpending(
                self._queue,
                GROUP,
                start=taken[0].entry_id,
                end=taken[-1].entry_id,
                count=PENDING_LOOKED_AT,
                consumer=consumer,
            )
        counts = {_text(p.identifier): int(p.delivered) for p in cast(Any, pending)}
        return [attrs.evolve(e, deliveries=counts.get(e.entry_id, 2)) for e in taken]

    async def queue_forget(self, *, idle: float) -> int:
        async with self._guard():
            consumers = await self._client.xinfo_consumers(self._queue, GROUP)
        gone = [
            _text(found.get("name"))
            for found in consumers
            if found.get("pending") == 0 and int(found.get("idle") or 0) >= idle * 1000
        ]
        forgotten = 0
        for name in gone:
            async with self._guard():
                forgotten += int(
                    await self._queue_scripts[2](keys=[self._queue], args=[GROUP, name])
                )
        return forgotten

    async def queue_done(self, entry_id: str) -> None:
        async with self._guard():
            await self._queue_scripts[0](keys=[self._queue], args=[GROUP, entry_id])

    async def queue_dead(self, entry_id: str, letter: DeadLetter) -> None:
        fields: list[str] = []
        for name, value in _letter_fields(letter).items():
            fields += [name, value]
        async with self._guard():
            await self._queue_scripts[1](
                keys=[self._queue, self._dead],
                args=[GROUP, entry_id, DEAD_LETTERS_KEPT, *fields],
            )

    async def dead_letters(
        self, *, limit: int = 100, cursor: str | None = None, token_id: str | None = None
    ) -> DeadLetterPage:
        limit = clamp_limit(limit)
        if cursor is not None and not _STREAM_ID.match(cursor):
            raise InvalidCursor(cursor)
        end = "+" if cursor is None else f"({cursor}"
        wanted = limit + 1 if token_id is None else SCAN
        async with self._guard():
            found = await self._client.xrevrange(self._dead, end, "-", count=wanted)
        letters = [_letter(item) for item in found]
        if token_id is None:
            more = len(letters) > limit
            items = letters[:limit]
            return DeadLetterPage(items, items[-1].letter_id if more else None)
        items = []
        for looked, letter in enumerate(letters, 1):
            if letter.token_id == token_id:
                items.append(letter)
            if len(items) == limit:
                more = looked < len(letters) or len(found) == wanted
                return DeadLetterPage(items, letter.letter_id if more else None)
        more = len(found) == wanted
        return DeadLetterPage(items, letters[-1].letter_id if more and letters else None)

    async def dead_letter_of(
        self, entry_id: str, *, token_id: str | None = None
    ) -> DeadLetter | None:
        """Looked for among the letters written since the entry's own time (a letter is
        written once its entry is read, so it is among the first :data:`SCAN` of them)."""
        if not _STREAM_ID.match(entry_id):
            raise InvalidCursor(entry_id)
        since = str(max(0, int(entry_id.partition("-")[0]) - SKEW_MS))
        async with self._guard():
            found = await self._client.xrange(self._dead, since, "+", count=SCAN)
        for item in found:
            letter = _letter(item)
            if letter.entry_id == entry_id:
                return letter if token_id is None or letter.token_id == token_id else None
        return None

    @functools.cached_property
    def _queue_scripts(self) -> tuple[Any, Any, Any]:
        """The scripts, registered on first use (a store that never sees a queue entry
        registers none)."""
        register = self._client.register_script
        return register(DONE), register(DEAD), register(FORGET)


def _entry(item: StreamEntry) -> QueueEntry:
    fields = {_text(k): _text(v) for k, v in (item.field_values or {}).items()}
    return QueueEntry(_text(item.identifier), fields)


def _text(value: object) -> str:
    """A field as text: coredis hands over bytes that are not UTF-8 as they are (any producer
    may append them); they are replaced, so the entry is refused for its content, never
    stuck."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _letter_fields(letter: DeadLetter) -> dict[str, str]:
    """The letter's fields, each valid UTF-8 (a lone surrogate in a hostile entry's id would
    fail the write, and with it the settling, at every try)."""
    fields = {
        "entry": letter.entry_id,
        "at": repr(letter.at),
        "status": str(letter.status),
        "error": letter.error,
        "message": letter.message,
        "field": letter.field or "",
        "event_id": letter.event_id or "",
        "token_id": letter.token_id or "",
    }
    return {name: value.encode("utf-8", "replace").decode() for name, value in fields.items()}


def _letter(item: StreamEntry) -> DeadLetter:
    values = {str(k): str(v) for k, v in (item.field_values or {}).items()}
    try:
        at, status = float(values.get("at", "0")), int(values.get("status", "0"))
    except ValueError:
        at, status = 0.0, 0
    return DeadLetter(
        letter_id=str(item.identifier),
        entry_id=values.get("entry", ""),
        at=at,
        status=status,
        error=values.get("error", ""),
        message=values.get("message", ""),
        field=values.get("field") or None,
        event_id=values.get("event_id") or None,
        token_id=values.get("token_id") or None,
    )
