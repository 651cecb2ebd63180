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
    P audit                        stream of audit entries: entry ``SEQ-0`` holds the JSON
    P audit:seq, P audit:head      the audit chain's head: seq and hash of the last entry
    P tokens                       hash: token id -> TokenRecord JSON (the token's hash, never it)
    P revoked                      hash: "serial:HEX" or "fingerprint:HEX" -> Revocation JSON
    P revoked:seq                  INCR: the last revocation's seq (control planes poll it)
    P certificates                 hash: serial -> IssuedCertificate JSON (bundle create)
    P certificates:seq             INCR: the last recorded certificate's seq
    P pins                         hash: name -> value pinned by the first control plane

Every write is one Lua script, so it is atomic: ``submit`` (event, indexes, audit entry), a
token's creation or revocation with its audit entry, and the compare-and-set of
``update_event``, which reads, applies :func:`transporter.protocol.status.advance` here and
writes only if the record is unchanged since it was read (SHA-1 of the JSON), else reads
again. Durability is the server's: run it with
``appendonly yes`` and ``appendfsync always`` for an event to be on disk before "202 accepted".

The audit log is a hash chain (:mod:`transporter.protocol.audit_chain`), whose SHA-256 Redis's
Lua cannot compute. So an append is a compare-and-set on the chain's head as well: the client
seals the entry (seq, prev_hash, hash) after the head it last saw, and the script (of ``audit``,
``submit`` or ``update_event``) appends it and moves the head only if that is still the head;
else it writes nothing and answers with the current head, and the client seals again. Two
appends can never both follow one head, whichever replica sends them: the chain cannot fork.
Within one process appends take turns (a lock), so they only ever retry for another replica's.
"""

from __future__ import annotations

import hashlib
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, quote, urlsplit

import attrs
import coredis
import trio
from coredis.connection import TCPConnection, UnixDomainSocketConnection
from coredis.pool import ConnectionPool
from coredis.response.types import StreamEntry
from coredis.retry import NoRetryPolicy
from coredis.typing import RedisError

from transporter.protocol import audit_chain, codec
from transporter.protocol.audit_chain import ChainHead
from transporter.protocol.identity import IssuedCertificate, Revocation
from transporter.protocol.model import AgentRecord, AuditEntry, Event, EventRecord, EventState
from transporter.protocol.status import StatusUpdate, accepted, advance
from transporter.protocol.tokens import TokenRecord
from transporter.store.base import (
    EventConflict,
    Page,
    StoreError,
    StoreUnavailable,
    TokenConflict,
)
from transporter.store.rows import Decoded, cursor_seq
from transporter.store.rows import clamp_limit as _limit
from transporter.store.rows import dump as _dump
from transporter.store.rows import load as _load
from transporter.store.rows import page as _page

DEFAULT_TIMEOUT = 10.0
DEFAULT_PREFIX = "transporter:"

_HEAD_MOVED = -2
"""A script's status when the audit chain's head was not the one the entry was sealed after."""


# The audit chain's compare-and-set, used by the scripts that append an audit entry.
# k: the index in KEYS of audit:seq (then audit:head, audit); a: the index in ARGV of the head's
# seq as the client saw it (then that head's hash, the sealed entry's seq, hash and JSON).
# audit_moved returns nil when the head is still the one the entry was sealed after, else the
# reply {-2, seq, hash} with the current head. append_audit writes the stream entry first: if
# XADD fails (an ID not above the stream's last), nothing of the script is written.
_APPEND_AUDIT = """
local function audit_moved(k, a)
  local seq = redis.call('GET', KEYS[k]) or '0'
  local hash = redis.call('GET', KEYS[k + 1]) or string.rep('0', 64)
  if seq == ARGV[a] and hash == ARGV[a + 1] then return nil end
  return {-2, seq, hash}
end
local function append_audit(k, a)
  redis.call('XADD', KEYS[k + 2], ARGV[a + 2] .. '-0', 'entry', ARGV[a + 4])
  redis.call('SET', KEYS[k], ARGV[a + 2])
  redis.call('SET', KEYS[k + 1], ARGV[a + 3])
end
"""

# KEYS: audit:seq, audit:head, audit. ARGV: the audit arguments (above).
# Returns {1} when appended, {-2, seq, hash} when the head moved.
_AUDIT = (
    _APPEND_AUDIT
    + """
local moved = audit_moved(1, 1)
if moved then return moved end
append_audit(1, 1)
return {1}
"""
)

# KEYS: events, seq, idx:all, idx:agent, idx:state, idx:agent:state, outbox, expiry,
#       audit:seq, audit:head, audit
# ARGV: id, record JSON without seq, expires_at, then the audit arguments (above)
# Returns {1, record} when stored, {0, existing record} when the id is taken (nothing written),
# {-2, seq, hash} when the audit chain's head moved (nothing written).
_SUBMIT = (
    _APPEND_AUDIT
    + """
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then return {0, existing} end
local moved = audit_moved(9, 4)
if moved then return moved end
append_audit(9, 4)
local seq = redis.call('INCR', KEYS[2])
local record = string.format('{"seq":%d,', seq) .. string.sub(ARGV[2], 2)
redis.call('HSET', KEYS[1], ARGV[1], record)
for i = 3, 7 do redis.call('ZADD', KEYS[i], seq, ARGV[1]) end
redis.call('ZADD', KEYS[8], ARGV[3], ARGV[1])
return {1, record}
"""
)

# KEYS: events, idx:state:old, idx:state:new, idx:agent:old, idx:agent:new, outbox, expiry,
#       audit:seq, audit:head, audit
# ARGV: id, SHA-1 of the record as read, new record, seq, "1" when the new state is terminal,
#       then the audit arguments (above), or nothing when there is no audit entry
# Returns {1} when written, {0} when the record changed since it was read, {-1} when it is
# unknown, {-2, seq, hash} when the audit chain's head moved (nothing written but for {1}).
_COMPARE_AND_SET = (
    _APPEND_AUDIT
    + """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current then return {-1} end
if redis.sha1hex(current) ~= ARGV[2] then return {0} end
local audit = #ARGV > 5
if audit then
  local moved = audit_moved(8, 6)
  if moved then return moved end
  append_audit(8, 6)
end
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
return {1}
"""
)

# KEYS: tokens, audit:seq, audit:head, audit
# ARGV: token id, its record's JSON as read ("" when there must be none), the new JSON, then the
#       audit arguments (above)
# Returns {1} when written, {0, JSON or ""} when the record is not the one read (nothing
# written), {-2, seq, hash} when the audit chain's head moved (nothing written).
_PUT_TOKEN = (
    _APPEND_AUDIT
    + """
local current = redis.call('HGET', KEYS[1], ARGV[1]) or ''
if current ~= ARGV[2] then return {0, current} end
local moved = audit_moved(2, 4)
if moved then return moved end
append_audit(2, 4)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return {1}
"""
)

# KEYS: revoked, revoked:seq, audit:seq, audit:head, audit
# ARGV: the revocation's key, its JSON without seq, then the audit arguments (above)
# Returns {1, record} when stored, {0, existing record} when the key is revoked already (nothing
# written), {-2, seq, hash} when the audit chain's head moved (nothing written).
_REVOKE = (
    _APPEND_AUDIT
    + """
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then return {0, existing} end
local moved = audit_moved(3, 3)
if moved then return moved end
append_audit(3, 3)
local seq = redis.call('INCR', KEYS[2])
local record = string.format('{"seq":%d,', seq) .. string.sub(ARGV[2], 2)
redis.call('HSET', KEYS[1], ARGV[1], record)
return {1, record}
"""
)

# KEYS: revoked, revoked:seq. ARGV: the last seq the caller has seen.
# Returns nothing when there is no newer revocation (the usual answer), else all of them.
_REVOCATIONS = """
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
if last <= tonumber(ARGV[1]) then return {} end
return redis.call('HVALS', KEYS[1])
"""

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
        self.audit_head = prefix + "audit:head"
        self.audit = prefix + "audit"
        self.tokens = prefix + "tokens"
        self.revoked = prefix + "revoked"
        self.revoked_seq = prefix + "revoked:seq"
        self.certificates = prefix + "certificates"
        self.certificates_seq = prefix + "certificates:seq"
        self.pins = prefix + "pins"

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
        self._put_token = client.register_script(_PUT_TOKEN)
        self._revoke = client.register_script(_REVOKE)
        self._revocations = client.register_script(_REVOCATIONS)
        self._audit_lock = trio.Lock()
        """Held while appending to the audit chain: this process's appends take turns."""
        self._chain_head = ChainHead()
        """The chain's head as last seen; a script that finds another corrects it."""
        self._decoded = Decoded(EventRecord)
        """Event records decoded lately, used while the stored text is the same."""

    @classmethod
    @asynccontextmanager
    async def open(
        cls, url: str, *, prefix: str = DEFAULT_PREFIX, call_timeout: float = DEFAULT_TIMEOUT
    ) -> AsyncIterator[RedisStore]:
        """A store on the server at ``url`` (``redis://``, ``rediss://``, ``unix://``, with
        ``:password@`` or ``user:password@`` when needed) for the duration of the block.

        ``rediss://`` is TLS, verified: the server's certificate must chain to the CA in
        ``?ssl_ca_certs=FILE`` (else the system's) and name the host (unless
        ``ssl_check_hostname=false``); ``ssl_certfile`` and ``ssl_keyfile`` give a client
        certificate. (coredis alone would not check the host name.)

        Connects on first use: an unreachable server shows as :class:`StoreUnavailable` from
        the calls (``ping`` first), not here. coredis keeps its connections in a task group of
        its own, which is why opening is a context manager.
        """
        try:
            pool = ConnectionPool.from_url(
                url,
                decode_components=True,  # a user name or password as URLs write them: %-quoted
                decode_responses=True,
                connect_timeout=call_timeout,
                stream_timeout=call_timeout,
                **_tls_options(url),
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
            raise StoreUnavailable(f"Redis: {_with_cause(exc)}") from exc

    async def ping(self) -> None:
        with self._guard():
            await self._client.ping()

    async def durability_warnings(self) -> list[str]:
        """Redis keeps what its persistence settings keep: ``appendonly yes`` with
        ``appendfsync always`` writes every accepted event to disk before it answers."""
        advice = "set appendonly yes and appendfsync always on the Redis server"
        try:
            with self._guard():
                found = await self._client.config_get(["appendonly", "appendfsync"])
        except StoreUnavailable as exc:  # CONFIG is often refused on managed Redis
            return [f"cannot read Redis's persistence settings ({exc}); make sure to {advice}"]
        settings = {str(k): str(v) for k, v in found.items()}
        if settings.get("appendonly") != "yes":
            return [
                f"Redis has appendonly {settings.get('appendonly')!r}: accepted events are lost"
                f" if Redis restarts or crashes; {advice}"
            ]
        if settings.get("appendfsync") != "always":
            return [
                f"Redis has appendfsync {settings.get('appendfsync')!r}: events accepted in the"
                f" last second can be lost if Redis's machine crashes; {advice}"
            ]
        return []

    async def submit(self, event: Event, audit: AuditEntry) -> tuple[EventRecord, bool]:
        with self._guard():
            async with self._audit_lock:
                while True:  # again while another replica's append moved the chain's head
                    sealed = audit_chain.seal(audit, self._chain_head)
                    reply: Any = await self._submit(
                        keys=self._submit_keys(event), args=self._submit_args(event, sealed)
                    )
                    status = self._status(reply, sealed)
                    if status != _HEAD_MOVED:
                        break
        return _submitted(event, status, reply)

    def _submit_keys(self, event: Event) -> list[str]:
        keys = self._keys
        agent = event.target_agent
        queued = EventState.QUEUED
        return [
            keys.events,
            keys.seq,
            keys.all,
            keys.index(agent=agent),
            keys.index(state=queued),
            keys.index(agent=agent, state=queued),
            keys.outbox(agent),
            keys.expiry,
            *self._audit_keys(),
        ]

    def _submit_args(self, event: Event, sealed: AuditEntry) -> list[str]:
        record_json = _dump_without_seq(accepted(EventRecord(event=event, seq=0)))
        return [event.id, record_json, repr(event.expires_at), *self._audit_args(sealed)]

    async def get_event(self, event_id: str) -> EventRecord | None:
        with self._guard():
            text = await self._client.hget(self._keys.events, event_id)
        return None if text is None else self._decoded.load(event_id, text)

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
        """One atomic script per event, as :meth:`submit`, all of them in one round trip (a
        pipeline): each audit entry sealed after the one before, as the scripts will append
        them. One that finds the chain's head elsewhere (another replica appended, or an
        earlier event of the batch existed already and appended nothing) wrote nothing; those
        are submitted again one by one."""
        results: list[tuple[EventRecord, bool] | EventConflict | None] = [None] * len(items)
        again: list[int] = []
        with self._guard():
            async with self._audit_lock:
                head = self._chain_head
                sealed = []
                for _, audit in items:
                    sealed.append(audit_chain.seal(audit, head))
                    head = audit_chain.head_of(sealed[-1])
                async with self._client.pipeline(transaction=False) as pipe:
                    requests: list[Awaitable[Any]] = [
                        self._submit(
                            keys=self._submit_keys(event),
                            args=self._submit_args(event, seal),
                            client=pipe,
                        )
                        for (event, _), seal in zip(items, sealed, strict=True)
                    ]
                for index, (request, seal) in enumerate(zip(requests, sealed, strict=True)):
                    reply: Any = await request
                    status = self._status(reply, seal)
                    if status == _HEAD_MOVED:
                        again.append(index)
                        continue
                    try:
                        results[index] = _submitted(items[index][0], status, reply)
                    except EventConflict as conflict:
                        results[index] = conflict
        for index in again:
            event, audit = items[index]
            try:
                results[index] = await self.submit(event, audit)
            except EventConflict as conflict:
                results[index] = conflict
        return [result for result in results if result is not None]

    async def update_many(
        self, items: Sequence[tuple[str, StatusUpdate, AuditEntry | None]]
    ) -> list[EventRecord | None]:
        """Like :meth:`update_event` for each, in order, in two round trips: the records read
        at once (a pipeline), each update advanced from the one before it (an event may have
        several in a batch), then every compare-and-set at once. One whose record changed
        meanwhile, or whose audit entry found the chain's head elsewhere, wrote nothing: those
        are done again one by one, in order."""
        if len(items) < 2:
            return [
                await self.update_event(event_id, update, audit=audit)
                for event_id, update, audit in items
            ]
        keys = self._keys
        results: list[EventRecord | None] = [None] * len(items)
        again: list[int] = []
        with self._guard():
            ids = list(dict.fromkeys(event_id for event_id, _, _ in items))
            async with self._client.pipeline(transaction=False) as pipe:
                reads = [pipe.hget(keys.events, event_id) for event_id in ids]
            current: dict[str, str | None] = {}
            for event_id, read in zip(ids, reads, strict=True):
                current[event_id] = await read
            async with self._audit_lock:
                head = self._chain_head
                planned: list[tuple[int, EventRecord, AuditEntry | None, Any]] = []
                async with self._client.pipeline(transaction=False) as pipe:
                    for index, (event_id, update, audit) in enumerate(items):
                        text = current[event_id]
                        if text is None:
                            continue  # unknown: None, as update_event says
                        old = self._decoded.load(event_id, text)
                        new = advance(old, update)
                        if new is None:
                            continue  # stale or a repeat: None
                        new_text = _dump(new)
                        self._decoded.wrote(event_id, new_text, new)
                        event_keys, event_args = self._cas_parts(old, text, new, new_text)
                        seal = None
                        if audit is not None:
                            seal = audit_chain.seal(audit, head)
                            head = audit_chain.head_of(seal)
                            event_keys += self._audit_keys()
                            event_args += self._audit_args(seal)
                        request: Awaitable[Any] = self._compare_and_set(
                            keys=event_keys, args=event_args, client=pipe
                        )
                        planned.append((index, new, seal, request))
                        current[event_id] = new_text
                for index, new, seal, request in planned:
                    status = self._status(await request, seal)
                    if status == 1:
                        results[index] = new
                    elif status != -1:  # changed meanwhile, or the chain moved: nothing written
                        again.append(index)
        for index in again:
            event_id, update, audit = items[index]
            results[index] = await self.update_event(event_id, update, audit=audit)
        return results

    def _cas_parts(
        self, old: EventRecord, text: str, new: EventRecord, new_text: str
    ) -> tuple[list[str], list[str]]:
        """The compare-and-set script's keys and arguments (no audit) to turn ``old``, read as
        ``text``, into ``new`` (``new_text``)."""
        keys = self._keys
        agent = new.event.target_agent
        old_state = old.state
        return [
            keys.events,
            keys.index(state=old_state),
            keys.index(state=new.state),
            keys.index(agent=agent, state=old_state),
            keys.index(agent=agent, state=new.state),
            keys.outbox(agent),
            keys.expiry,
        ], [
            new.event.id,
            hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest(),
            new_text,
            str(new.seq),
            "1" if new.state.terminal else "0",
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
                old = self._decoded.load(event_id, text)
                new = advance(old, update)
                if new is None:
                    return None
                new_text = _dump(new)
                self._decoded.wrote(event_id, new_text, new)
                event_keys, event_args = self._cas_parts(old, text, new, new_text)
                if audit is None:
                    reply: Any = await self._compare_and_set(keys=event_keys, args=event_args)
                    status = self._status(reply, None)
                else:
                    # The chain's turn only for the write: reading and advancing need none.
                    async with self._audit_lock:
                        while True:  # again while another replica's append moved the head
                            sealed = audit_chain.seal(audit, self._chain_head)
                            reply = await self._compare_and_set(
                                keys=[*event_keys, *self._audit_keys()],
                                args=[*event_args, *self._audit_args(sealed)],
                            )
                            status = self._status(reply, sealed)
                            if status != _HEAD_MOVED:
                                break
                if status == 1:
                    return new
                if status == -1:
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
            async with self._audit_lock:
                while True:  # again while another replica's append moved the chain's head
                    sealed = audit_chain.seal(entry, self._chain_head)
                    reply: Any = await self._audit(
                        keys=self._audit_keys(), args=self._audit_args(sealed)
                    )
                    if self._status(reply, sealed) == 1:
                        return sealed

    def _audit_keys(self) -> list[str]:
        return [self._keys.audit_seq, self._keys.audit_head, self._keys.audit]

    def _audit_args(self, sealed: AuditEntry) -> list[str]:
        """The head ``sealed`` follows, and ``sealed`` itself: what the scripts' audit_moved and
        append_audit take."""
        return [str(sealed.seq - 1), sealed.prev_hash, str(sealed.seq), sealed.hash, _dump(sealed)]

    def _status(self, reply: Any, sealed: AuditEntry | None) -> int:
        """A script's status; follows the chain's head: to ``sealed`` when the script appended
        it (status 1), to the head the script found when that had moved."""
        answer = cast(list[Any], reply)
        status = int(answer[0])
        if status == _HEAD_MOVED:
            self._chain_head = _chain_head(answer[1], answer[2])
        elif status == 1 and sealed is not None:
            self._chain_head = audit_chain.head_of(sealed)
        return status

    async def list_audit(self, *, limit: int = 100, cursor: str | None = None) -> Page[AuditEntry]:
        limit = _limit(limit)
        before = _cursor_seq(cursor)
        end = "+" if before is None else f"({before}-0"
        with self._guard():
            found = await self._client.xrevrange(self._keys.audit, end, "-", count=limit + 1)
        entries = [_audit_entry(item) for item in found]
        return _page(entries, limit, lambda entry: entry.seq)

    async def audit_after(self, after: int = 0, *, limit: int = 100) -> list[AuditEntry]:
        with self._guard():
            found = await self._client.xrange(
                self._keys.audit, f"({max(after, 0)}-0", "+", count=_limit(limit)
            )
        return [_audit_entry(item) for item in found]

    async def audit_head(self) -> ChainHead:
        with self._guard():
            seq, hash_ = await self._client.mget([self._keys.audit_seq, self._keys.audit_head])
        return _chain_head(seq or "0", hash_ or audit_chain.GENESIS)

    # --- tokens ----------------------------------------------------------------------------

    async def create_token(self, record: TokenRecord, audit: AuditEntry) -> None:
        found = await self._write_token(record.id, "", _dump(record), audit)
        if found is not None:
            raise TokenConflict(record.id)

    async def pin(self, name: str, value: str) -> str:
        with self._guard():
            await self._client.hsetnx(self._keys.pins, name, value)
            pinned = await self._client.hget(self._keys.pins, name)
        if pinned is None:  # only if someone deleted it in between: pin again
            return await self.pin(name, value)
        return pinned

    async def get_token(self, token_id: str) -> TokenRecord | None:
        with self._guard():
            text = await self._client.hget(self._keys.tokens, token_id)
        return None if text is None else _load(text, TokenRecord)

    async def list_tokens(self) -> list[TokenRecord]:
        with self._guard():
            stored = await self._client.hgetall(self._keys.tokens)
        records = [_load(text, TokenRecord) for text in stored.values()]
        return sorted(records, key=lambda record: (record.created_at, record.id))

    async def revoke_token(
        self, token_id: str, at: float, audit: AuditEntry
    ) -> tuple[TokenRecord, bool] | None:
        with self._guard():
            text = await self._client.hget(self._keys.tokens, token_id)
        while text:  # again while another writer changed the record in between
            record = _load(text, TokenRecord)
            if record.revoked:
                return record, False
            revoked = attrs.evolve(record, revoked_at=at)
            found = await self._write_token(token_id, text, _dump(revoked), audit)
            if found is None:
                return revoked, True
            text = found
        return None

    async def _write_token(
        self, token_id: str, expected: str, new: str, audit: AuditEntry
    ) -> str | None:
        """Put ``new`` in place of ``expected`` ("": none) with ``audit``; ``None`` when done,
        else what was found instead (nothing written)."""
        with self._guard():
            async with self._audit_lock:
                while True:  # again while another replica's append moved the chain's head
                    sealed = audit_chain.seal(audit, self._chain_head)
                    reply: Any = await self._put_token(
                        keys=[self._keys.tokens, *self._audit_keys()],
                        args=[token_id, expected, new, *self._audit_args(sealed)],
                    )
                    status = self._status(reply, sealed)
                    if status == 1:
                        return None
                    if status != _HEAD_MOVED:
                        return str(cast(list[Any], reply)[1])

    # --- revoked certificates ----------------------------------------------------------------

    async def revoke_certificate(
        self, revocation: Revocation, audit: AuditEntry
    ) -> tuple[Revocation, bool]:
        record_json = _dump_without_seq(revocation)
        with self._guard():
            async with self._audit_lock:
                while True:  # again while another replica's append moved the chain's head
                    sealed = audit_chain.seal(audit, self._chain_head)
                    reply: Any = await self._revoke(
                        keys=[self._keys.revoked, self._keys.revoked_seq, *self._audit_keys()],
                        args=[revocation.key, record_json, *self._audit_args(sealed)],
                    )
                    status = self._status(reply, sealed)
                    if status != _HEAD_MOVED:
                        break
        return _load(cast(list[Any], reply)[1], Revocation), status == 1

    async def record_certificate(self, certificate: IssuedCertificate, audit: AuditEntry) -> None:
        record_json = _dump_without_seq(certificate)
        keys = [self._keys.certificates, self._keys.certificates_seq, *self._audit_keys()]
        with self._guard():
            async with self._audit_lock:
                while True:  # the revocations' script: put a field once, with its audit entry
                    sealed = audit_chain.seal(audit, self._chain_head)
                    reply: Any = await self._revoke(
                        keys=keys,
                        args=[certificate.serial, record_json, *self._audit_args(sealed)],
                    )
                    if self._status(reply, sealed) != _HEAD_MOVED:
                        return

    async def issued_certificates(self) -> list[IssuedCertificate]:
        with self._guard():
            stored: Any = await self._client.hvals(self._keys.certificates)
        found = [_load(text, IssuedCertificate) for text in cast(list[str], stored)]
        return sorted(found, key=lambda c: c.seq)

    async def revocations(self, *, after: int = 0) -> list[Revocation]:
        with self._guard():
            reply: Any = await self._revocations(
                keys=[self._keys.revoked, self._keys.revoked_seq], args=[after]
            )
        found = [_load(text, Revocation) for text in cast(list[str], reply)]
        return sorted((r for r in found if r.seq > after), key=lambda r: r.seq)


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


_TLS_PARAMETERS = {
    "ssl_ca_certs",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_check_hostname",
    "ssl_cert_reqs",
}


def _tls_options(url: str) -> dict[str, Any]:
    """For ``rediss://``: the TLS context, verified by default (certificate and host name)."""
    parts = urlsplit(url)
    if parts.scheme != "rediss":
        return {}
    query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
    unknown = sorted({name for name in query if name.startswith("ssl_")} - _TLS_PARAMETERS)
    if unknown:
        raise StoreUnavailable(f"bad Redis URL: unknown TLS parameter {unknown[0]!r}")
    ca = query.get("ssl_ca_certs")
    try:
        if ca is None:
            context = ssl.create_default_context()
        elif Path(ca).is_dir():
            context = ssl.create_default_context(capath=ca)
        else:
            context = ssl.create_default_context(cafile=ca)
        if query.get("ssl_check_hostname", "true").lower() in ("false", "0", "no"):
            context.check_hostname = False
        if query.get("ssl_cert_reqs", "required").lower() == "none":
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if "ssl_certfile" in query:
            context.load_cert_chain(query["ssl_certfile"], query.get("ssl_keyfile"))
    except (OSError, ssl.SSLError) as exc:
        raise StoreUnavailable(f"Redis TLS settings in the store URL: {exc}") from None
    return {"ssl_context": context}


def _submitted(event: Event, status: int, reply: Any) -> tuple[EventRecord, bool]:
    """What the submit script's ``reply`` (status 1 or 0) means for ``event``: stored, already
    there (the same request), or :class:`EventConflict` (another event under its id)."""
    record = _load(cast(list[Any], reply)[1], EventRecord)
    if status == 1:
        return record, True
    if record.event.same_request(event):
        return record, False
    raise EventConflict(event.id)


def _dump_without_seq(value: object) -> str:
    """The JSON with ``seq`` left out: the Lua script puts the seq it assigns first."""
    data = codec.unstructure(value)
    del data["seq"]
    text = json.dumps(data, separators=(",", ":"))
    if not text.startswith('{"'):
        raise StoreError(f"cannot store {type(value).__name__}: encodes to {text[:20]!r}")
    return text


def _with_cause(exc: BaseException) -> str:
    """The error and what caused it: coredis's "Unable to establish a connection" says why
    (refused, a certificate that does not verify ...) only in its cause."""
    text = str(exc) or type(exc).__name__
    cause = exc.__cause__
    if cause is not None and str(cause) and str(cause) not in text:
        text += f": {cause}"
    return text


def _chain_head(seq: object, hash_: object) -> ChainHead:
    if not (isinstance(seq, str) and seq.isascii() and seq.isdecimal()):
        raise StoreError(f"the audit chain's head seq in Redis is {seq!r}, not a number")
    return ChainHead(int(seq), str(hash_))


def _audit_entry(item: StreamEntry) -> AuditEntry:
    text = item.field_values.get("entry")
    if text is None:
        raise StoreError(f"the audit stream's entry {item.identifier!s} holds no 'entry' field")
    return _load(str(text), AuditEntry)


def _cursor_seq(cursor: str | None) -> int | None:
    return cursor_seq(cursor, below=2**53)
