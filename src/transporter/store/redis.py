"""The shared store: Redis through coredis (native on trio), for several control-plane replicas.

Keys (``P`` is the prefix, ``transporter:`` by default; agent ids and states are %-quoted)::

    P seq                          INCR: the next event seq
    P events                       hash: event id -> EventRecord JSON (seq included)
    P idx:all                      zset of event ids by seq           (list_events)
    P idx:agent:A                  zset by seq, events for agent A    (list_events agent=A)
    P idx:state:S                  zset by seq, events in state S     (list_events state=S)
    P idx:agent:A:state:S          zset by seq                        (both filters)
    P outbox:A                     zset by seq of A's unfinished events (terminal ones leave)
    P expiry                       zset by expires_at of unfinished events
    P agents                       hash: agent id -> AgentRecord JSON
    P audit:seq, P audit           INCR, and a stream whose entry ``SEQ-0`` holds the JSON

Every write is one Lua script, so it is atomic: ``submit`` (event, indexes, audit entry) and the
compare-and-set of ``update_event``, which reads, applies
:func:`transporter.protocol.status.advance` here and writes only if the record is unchanged
since it was read (SHA-1 of the JSON), else reads again. Durability is the server's: run it with
``appendonly yes`` and ``appendfsync always`` for an event to be on disk before "202 accepted".
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any, cast
from urllib.parse import quote

import coredis
import trio
from coredis.connection import TCPConnection, UnixDomainSocketConnection
from coredis.pool import ConnectionPool
from coredis.retry import NoRetryPolicy
from coredis.typing import RedisError

from transporter.protocol import codec
from transporter.protocol.model import AgentRecord, AuditEntry, Event, EventRecord, EventState
from transporter.protocol.status import StatusUpdate, accepted, advance
from transporter.store.base import (
    MAX_LIMIT,
    EventConflict,
    InvalidCursor,
    Page,
    StoreError,
    StoreUnavailable,
)

DEFAULT_TIMEOUT = 10.0
DEFAULT_PREFIX = "transporter:"

# Appends one audit entry: KEYS audit:seq, audit; ARGV[n] the entry's JSON without its seq.
_APPEND_AUDIT = """
local function append_audit(seq_key, stream_key, entry)
  local seq = redis.call('INCR', seq_key)
  local text = string.format('{"seq":%d,', seq) .. string.sub(entry, 2)
  redis.call('XADD', stream_key, string.format('%d-0', seq), 'entry', text)
  return text
end
"""

_AUDIT = _APPEND_AUDIT + "return append_audit(KEYS[1], KEYS[2], ARGV[1])"

# KEYS: events, seq, idx:all, idx:agent, idx:state, idx:agent:state, outbox, expiry,
#       audit:seq, audit
# ARGV: id, record JSON without seq, expires_at, audit entry JSON without seq
# Returns {1, record} when stored, {0, existing record} when the id is taken.
_SUBMIT = (
    _APPEND_AUDIT
    + """
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then return {0, existing} end
local seq = redis.call('INCR', KEYS[2])
local record = string.format('{"seq":%d,', seq) .. string.sub(ARGV[2], 2)
redis.call('HSET', KEYS[1], ARGV[1], record)
for i = 3, 7 do redis.call('ZADD', KEYS[i], seq, ARGV[1]) end
redis.call('ZADD', KEYS[8], ARGV[3], ARGV[1])
append_audit(KEYS[9], KEYS[10], ARGV[4])
return {1, record}
"""
)

# KEYS: events, idx:state:old, idx:state:new, idx:agent:old, idx:agent:new, outbox, expiry,
#       audit:seq, audit
# ARGV: id, SHA-1 of the record as read, new record, seq, "1" when the new state is terminal,
#       audit entry JSON without seq or "" for none
# Returns 1 when written, 0 when the record changed since it was read, -1 when it is unknown.
_COMPARE_AND_SET = (
    _APPEND_AUDIT
    + """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current then return -1 end
if redis.sha1hex(current) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
if KEYS[2] ~= KEYS[3] then
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
  redis.call('ZREM', KEYS[4], ARGV[1])
  redis.call('ZADD', KEYS[5], ARGV[4], ARGV[1])
end
if ARGV[5] == '1' then
  redis.call('ZREM', KEYS[6], ARGV[1])
  redis.call('ZREM', KEYS[7], ARGV[1])
end
if ARGV[6] ~= '' then append_audit(KEYS[8], KEYS[9], ARGV[6]) end
return 1
"""
)

# KEYS: an index zset, events. ARGV: min, max (scores), "rev" or "fwd", count.
# Returns the records of up to count ids, in one consistent read.
_PAGE = """
local ids
if ARGV[3] == 'rev' then
  ids = redis.call('ZRANGE', KEYS[1], ARGV[2], ARGV[1], 'BYSCORE', 'REV', 'LIMIT', 0, ARGV[4])
else
  ids = redis.call('ZRANGE', KEYS[1], ARGV[1], ARGV[2], 'BYSCORE', 'LIMIT', 0, ARGV[4])
end
local records = {}
for i, id in ipairs(ids) do records[i] = redis.call('HGET', KEYS[2], id) end
return records
"""


class _Keys:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.seq = prefix + "seq"
        self.events = prefix + "events"
        self.all = prefix + "idx:all"
        self.expiry = prefix + "expiry"
        self.agents = prefix + "agents"
        self.audit_seq = prefix + "audit:seq"
        self.audit = prefix + "audit"

    def index(self, agent: str | None = None, state: EventState | None = None) -> str:
        if agent is None and state is None:
            return self.all
        key = self.prefix + "idx"
        if agent is not None:
            key += ":agent:" + quote(agent, safe="")
        if state is not None:
            key += ":state:" + quote(state.value, safe="")
        return key

    def outbox(self, agent: str) -> str:
        return self.prefix + "outbox:" + quote(agent, safe="")


class RedisStore:
    """The :class:`~transporter.store.base.Store` on a Redis server. Open with :meth:`open`."""

    def __init__(self, client: coredis.Redis[str], *, prefix: str, call_timeout: float) -> None:
        self._client = client
        self._keys = _Keys(prefix)
        self._timeout = call_timeout
        self._closed = False
        self._submit = client.register_script(_SUBMIT)
        self._compare_and_set = client.register_script(_COMPARE_AND_SET)
        self._page = client.register_script(_PAGE)
        self._audit = client.register_script(_AUDIT)

    @classmethod
    @asynccontextmanager
    async def open(
        cls, url: str, *, prefix: str = DEFAULT_PREFIX, call_timeout: float = DEFAULT_TIMEOUT
    ) -> AsyncIterator[RedisStore]:
        """A store on the server at ``url`` (``redis://``, ``rediss://``, ``unix://``, with
        ``:password@`` when needed) for the duration of the block.

        Connects on first use: an unreachable server shows as :class:`StoreUnavailable` from
        the calls (``ping`` first), not here. coredis keeps its connections in a task group of
        its own, which is why opening is a context manager.
        """
        try:
            pool = ConnectionPool.from_url(
                url,
                decode_responses=True,
                connect_timeout=call_timeout,
                stream_timeout=call_timeout,
            )
        except (ValueError, RedisError) as exc:
            raise StoreUnavailable(f"bad Redis URL: {exc}") from None
        pool.connection_class = _TIDY.get(pool.connection_class, pool.connection_class)
        # No silent retries: a script whose reply was lost may have run, and running it again
        # would tell the caller "not created" or "did not apply" about its own write. The
        # caller hears StoreUnavailable (outcome unknown) and decides.
        client: coredis.Redis[str] = coredis.Redis(
            connection_pool=pool, decode_responses=True, retry_policy=NoRetryPolicy()
        )
        raised: BaseException | None = None
        try:
            async with client:
                store = cls(client, prefix=prefix, call_timeout=call_timeout)
                try:
                    yield store
                except BaseException as exc:
                    raised = exc
                    raise
                finally:
                    await store.aclose()
        except BaseExceptionGroup as group:
            # coredis's task group (a trio nursery) wraps what the caller's block raised in an
            # ExceptionGroup; give the caller back its own exception, as the SQLite store does.
            if raised is None or list(group.exceptions) != [raised]:
                raise
            context = raised.__context__
            try:
                raise raised  # the same exception, not a new one
            finally:
                raised.__context__ = context  # not "raised while handling the group"

    async def aclose(self) -> None:
        """Refuse further calls; the connections close when :meth:`open`'s block ends."""
        self._closed = True

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Every coredis call: a timeout, and no coredis error escapes."""
        if self._closed:
            raise StoreUnavailable("the store is closed")
        try:
            with trio.fail_after(self._timeout):
                yield
        except trio.TooSlowError:
            raise StoreUnavailable(f"Redis did not answer within {self._timeout} s") from None
        except (RedisError, OSError) as exc:  # OSError covers TimeoutError
            raise StoreUnavailable(f"Redis: {exc}") from exc

    async def ping(self) -> None:
        with self._guard():
            await self._client.ping()

    async def submit(self, event: Event, audit: AuditEntry) -> tuple[EventRecord, bool]:
        keys = self._keys
        agent = event.target_agent
        queued = EventState.QUEUED
        record_json = _dump_without_seq(accepted(EventRecord(event=event, seq=0)))
        with self._guard():
            reply: Any = await self._submit(
                keys=[
                    keys.events,
                    keys.seq,
                    keys.all,
                    keys.index(agent=agent),
                    keys.index(state=queued),
                    keys.index(agent=agent, state=queued),
                    keys.outbox(agent),
                    keys.expiry,
                    keys.audit_seq,
                    keys.audit,
                ],
                args=[event.id, record_json, repr(event.expires_at), _dump_without_seq(audit)],
            )
        created, text = cast(list[Any], reply)
        record = _load(text, EventRecord)
        if created:
            return record, True
        if record.event.same_request(event):
            return record, False
        raise EventConflict(event.id)

    async def get_event(self, event_id: str) -> EventRecord | None:
        with self._guard():
            text = await self._client.hget(self._keys.events, event_id)
        return None if text is None else _load(text, EventRecord)

    async def list_events(
        self,
        *,
        agent: str | None = None,
        state: EventState | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[EventRecord]:
        limit = _limit(limit)
        before = _cursor_seq(cursor)
        upper = "+inf" if before is None else f"({before}"
        records = await self._records(self._keys.index(agent, state), upper, "rev", limit + 1)
        return _page(records, limit, lambda record: record.seq)

    async def submit_many(
        self, items: Sequence[tuple[Event, AuditEntry]]
    ) -> list[tuple[EventRecord, bool] | EventConflict]:
        # One atomic script per event; Redis has no multi-key batch that keeps each event's
        # idempotency check, and a round trip here is cheap next to a disk flush.
        results: list[tuple[EventRecord, bool] | EventConflict] = []
        for event, audit in items:
            try:
                results.append(await self.submit(event, audit))
            except EventConflict as conflict:
                results.append(conflict)
        return results

    async def update_many(
        self, items: Sequence[tuple[str, StatusUpdate, AuditEntry | None]]
    ) -> list[EventRecord | None]:
        return [
            await self.update_event(event_id, update, audit=audit)
            for event_id, update, audit in items
        ]

    async def update_event(
        self, event_id: str, update: StatusUpdate, *, audit: AuditEntry | None = None
    ) -> EventRecord | None:
        keys = self._keys
        with self._guard():  # one timeout for all the rounds
            while True:  # compare-and-set: another writer in between means reading again
                text = await self._client.hget(keys.events, event_id)
                if text is None:
                    return None
                old = _load(text, EventRecord)
                new = advance(old, update)
                if new is None:
                    return None
                agent = old.event.target_agent
                written: Any = await self._compare_and_set(
                    keys=[
                        keys.events,
                        keys.index(state=old.state),
                        keys.index(state=new.state),
                        keys.index(agent=agent, state=old.state),
                        keys.index(agent=agent, state=new.state),
                        keys.outbox(agent),
                        keys.expiry,
                        keys.audit_seq,
                        keys.audit,
                    ],
                    args=[
                        event_id,
                        hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest(),
                        _dump(new),
                        new.seq,
                        "1" if new.state.terminal else "0",
                        "" if audit is None else _dump_without_seq(audit),
                    ],
                )
                if written == 1:
                    return new
                if written == -1:
                    return None

    async def outbox(
        self, agent_id: str, *, after: int = 0, limit: int = 100
    ) -> list[tuple[int, Event]]:
        records = await self._records(
            self._keys.outbox(agent_id), "+inf", "fwd", _limit(limit), lower=f"({after}"
        )
        return [(record.seq, record.event) for record in records]

    async def expiring(self, now: float, *, limit: int = 100) -> list[str]:
        with self._guard():
            ids = await self._client.zrange(
                self._keys.expiry,
                "-inf",
                repr(now),
                sortby=coredis.PureToken.BYSCORE,
                offset=0,
                count=_limit(limit),
            )
        return list(ids)

    async def _records(
        self, index: str, upper: str, order: str, count: int, *, lower: str = "-inf"
    ) -> list[EventRecord]:
        with self._guard():
            reply: Any = await self._page(
                keys=[index, self._keys.events], args=[lower, upper, order, count]
            )
        return [_load(text, EventRecord) for text in cast(list[str | None], reply) if text]

    async def put_agent(self, record: AgentRecord) -> None:
        with self._guard():
            await self._client.hset(self._keys.agents, {record.info.id: _dump(record)})

    async def get_agent(self, agent_id: str) -> AgentRecord | None:
        with self._guard():
            text = await self._client.hget(self._keys.agents, agent_id)
        return None if text is None else _load(text, AgentRecord)

    async def list_agents(self) -> list[AgentRecord]:
        with self._guard():
            stored = await self._client.hgetall(self._keys.agents)
        return [_load(stored[agent_id], AgentRecord) for agent_id in sorted(stored)]

    async def audit(self, entry: AuditEntry) -> AuditEntry:
        with self._guard():
            text: Any = await self._audit(
                keys=[self._keys.audit_seq, self._keys.audit], args=[_dump_without_seq(entry)]
            )
        return _load(cast(str, text), AuditEntry)

    async def list_audit(self, *, limit: int = 100, cursor: str | None = None) -> Page[AuditEntry]:
        limit = _limit(limit)
        before = _cursor_seq(cursor)
        end = "+" if before is None else f"({before}-0"
        with self._guard():
            found = await self._client.xrevrange(self._keys.audit, end, "-", count=limit + 1)
        entries = [_load(str(item.field_values["entry"]), AuditEntry) for item in found]
        return _page(entries, limit, lambda entry: entry.seq)


# --- coredis connections that tidy up after a failed connect ----------------------------------


class _TidyTCPConnection(TCPConnection):
    """coredis 6.9 leaves a connection's memory streams open when the connect itself fails
    (server down); anyio then warns ``ResourceWarning: Unclosed MemoryObject...Stream`` when
    they are collected. Close them here."""

    async def _connect(self) -> Any:
        try:
            return await super()._connect()
        except BaseException:
            _close_buffers(self)
            raise


class _TidyUnixConnection(UnixDomainSocketConnection):
    async def _connect(self) -> Any:
        try:
            return await super()._connect()
        except BaseException:
            _close_buffers(self)
            raise


_TIDY: dict[type[Any], type[Any]] = {
    TCPConnection: _TidyTCPConnection,
    UnixDomainSocketConnection: _TidyUnixConnection,
}


def _close_buffers(connection: TCPConnection | UnixDomainSocketConnection) -> None:
    for stream in (
        connection._write_buffer_in,
        connection._write_buffer_out,
        connection._push_message_buffer_in,
        connection._push_message_buffer_out,
        connection._streamed_message_buffer_in,
        connection._streamed_message_buffer_out,
    ):
        stream.close()


# --- helpers ---------------------------------------------------------------------------------


def _dump(value: object) -> str:
    return json.dumps(codec.unstructure(value), separators=(",", ":"))


def _dump_without_seq(value: object) -> str:
    """The JSON with ``seq`` left out: the Lua script puts the seq it assigns first."""
    data = codec.unstructure(value)
    del data["seq"]
    text = json.dumps(data, separators=(",", ":"))
    if not text.startswith('{"'):
        raise StoreError(f"cannot store {type(value).__name__}: encodes to {text[:20]!r}")
    return text


def _load[T](text: str, kind: type[T]) -> T:
    try:
        return codec.structure(json.loads(text), kind)
    except ValueError as exc:  # not JSON, or codec.ProtocolError
        raise StoreError(f"a stored {kind.__name__} cannot be read: {exc}") from exc


def _page[T](items: list[T], limit: int, seq: Callable[[T], int]) -> Page[T]:
    """``items`` were fetched with ``limit + 1``: one more than asked says there is more."""
    if len(items) > limit:
        items = items[:limit]
        return Page(items, str(seq(items[-1])))
    return Page(items, None)


def _limit(limit: int) -> int:
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    return min(limit, MAX_LIMIT)


def _cursor_seq(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not (cursor.isascii() and cursor.isdecimal()) or not 0 < int(cursor) < 2**53:
        raise InvalidCursor(cursor)
    return int(cursor)
