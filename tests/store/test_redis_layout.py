"""The Redis store's layout 2 (an event apart from its progress) and the migration to it from
layout 1, where one hash held each event's whole record. Layout 1 is written here with raw
commands, as the older control planes' scripts wrote it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from typing import Any

import coredis
import pytest
import trio
from coredis.exceptions import ResponseError

from tests.bed import records as r
from tests.bed.redis import RedisServer
from transporter.protocol import codec
from transporter.protocol.model import AuditEntry, EventRecord, EventState, Phase
from transporter.protocol.status import StatusUpdate, accepted, advance
from transporter.security import audit_chain
from transporter.security.audit_chain import ChainHead
from transporter.store import StoreError, StoreUnavailable, verify_audit
from transporter.store.redis import RedisStore
from transporter.store.redis.keys import Keys
from transporter.store.redis.migration import LAYOUT, migrate
from transporter.store.redis.scripts import Scripts

KEYS = Keys("transporter:")

# --- layout 1, as the older control planes wrote it -------------------------------------------


def old_record(n: int) -> EventRecord:
    """Event ``n`` of agent ``a0``..``a2``, at some step of its way (every third finished)."""
    event = r.event(f"ev-{n:03}", f"a{n % 3}", created_at=r.T0 + n)
    record = accepted(EventRecord(event=event, seq=n + 1))
    for step in r.JOURNEY[: n % 7]:
        moved = advance(record, step)
        assert moved is not None
        record = moved
    return record


def old_text(record: EventRecord) -> str:
    """As the old submit script wrote it (seq first) for a queued event, else as the old
    compare-and-set did (the converter's order)."""
    data = codec.unstructure(record)
    if record.state is EventState.QUEUED:
        data = {"seq": data.pop("seq")} | data
    return json.dumps(data, separators=(",", ":"))


async def write_layout_1(raw: coredis.Redis[str], count: int) -> list[EventRecord]:
    """``count`` events in layout 1 with their indexes and a chained audit entry each."""
    records = [old_record(n) for n in range(count)]
    head = ChainHead()
    for record in records:
        event, seq = record.event, record.seq
        await raw.incr(KEYS.seq)
        await raw.hset(KEYS.records, {event.id: old_text(record)})
        for index in (
            KEYS.all,
            KEYS.index(agent=event.target_agent),
            KEYS.index(state=record.state),
            KEYS.index(agent=event.target_agent, state=record.state),
        ):
            await raw.zadd(index, {event.id: seq})
        if not record.state.terminal:
            await raw.zadd(KEYS.outbox(event.target_agent), {event.id: seq})
            await raw.zadd(KEYS.expiry, {event.id: event.expires_at})
        sealed = audit_chain.seal(r.accepted_audit(event), head)
        await raw.xadd(KEYS.audit, {"entry": codec_text(sealed)}, identifier=f"{sealed.seq}-0")
        head = audit_chain.head_of(sealed)
        await raw.set(KEYS.audit_seq, str(head.seq))
        await raw.set(KEYS.audit_head, head.hash)
    return records


def codec_text(value: object) -> str:
    return json.dumps(codec.unstructure(value), separators=(",", ":"))


@asynccontextmanager
async def raw_client(server: RedisServer) -> AsyncIterator[coredis.Redis[str]]:
    async with coredis.Redis.from_url(server.url, decode_responses=True) as raw:
        yield raw


async def assert_all_there(store: RedisStore, records: list[EventRecord]) -> None:
    """Every record reads, lists and sits in its outbox as it was written in layout 1."""
    for record in records:
        assert await store.get_event(record.event.id) == record
    newest_first = sorted(records, key=lambda record: -record.seq)
    listed = await store.list_events(limit=1000)
    assert listed.items == newest_first
    for agent in ("a0", "a1", "a2"):
        mine = [rec for rec in newest_first if rec.event.target_agent == agent]
        assert (await store.list_events(agent=agent, limit=1000)).items == mine
        unfinished = [(rec.seq, rec.event) for rec in mine[::-1] if not rec.state.terminal]
        assert await store.outbox(agent, limit=1000) == unfinished
    queued = [rec for rec in newest_first if rec.state is EventState.QUEUED]
    assert (await store.list_events(state=EventState.QUEUED, limit=1000)).items == queued


async def assert_layout_2(raw: coredis.Redis[str], count: int) -> None:
    assert await raw.get(KEYS.layout) == str(LAYOUT)
    assert await raw.type(KEYS.records) == "string"  # fails an older control plane's writes
    assert await raw.hlen(KEYS.event) == count
    assert await raw.hlen(KEYS.progress) == count


# --- the migration ----------------------------------------------------------------------------


async def test_layout_1_is_read_updated_and_listed_after_the_migration(
    redis_server: RedisServer,
) -> None:
    async with raw_client(redis_server) as raw:
        records = await write_layout_1(raw, 30)
        async with RedisStore.open(redis_server.url) as store:
            await assert_all_there(store, records)
            await assert_layout_2(raw, 30)
            queued = records[0]
            assert queued.state is EventState.QUEUED
            for step in r.JOURNEY[:-1]:
                assert await store.update_event(queued.event.id, step) is not None
            finished = AuditEntry(at=r.T0 + 6, action="event.completed", event_id="ev-000")
            done = await store.update_event(queued.event.id, r.JOURNEY[-1], audit=finished)
            assert done is not None and done.state is EventState.COMPLETED
            assert await store.get_event(queued.event.id) == done
            assert [e.id for _, e in await store.outbox("a0", limit=1000)].count("ev-000") == 0
            later, created = await store.submit(r.event("new"), r.accepted_audit(r.event("new")))
            assert created and later.seq == 31
            result = await verify_audit(store)
            assert result.intact, result.describe()
            assert result.count == 30 + 1 + 1
        with pytest.raises(
            ResponseError, match="wrong kind of value"
        ):  # an older control plane's write
            await raw.hset(KEYS.records, {"ev-x": "{}"})


async def test_an_interrupted_migration_loses_nothing_and_goes_on(
    redis_server: RedisServer,
) -> None:
    async with raw_client(redis_server) as raw:
        records = await write_layout_1(raw, 40)
        with pytest.raises(StoreUnavailable, match="lost"):
            await migrate(raw, KEYS, Scripts(raw), failing_after(4), batch=5)
        moved = await raw.hlen(KEYS.progress)
        assert 0 < moved < 40  # some moved, some not
        assert await raw.hlen(KEYS.event) == moved
        assert await raw.hlen(KEYS.records) == 40 - moved
        assert await raw.get(KEYS.layout) is None
        async with RedisStore.open(redis_server.url) as store:
            await assert_all_there(store, records)
            assert (await verify_audit(store)).intact
        await assert_layout_2(raw, 40)
        await migrate(raw, KEYS, Scripts(raw), failing_after(1))  # done: one round trip


def failing_after(calls: int) -> Callable[[], Any]:
    """A stand-in for the store's guard of each round trip: the connection is lost at call
    ``calls + 1``."""
    made = 0

    @contextmanager
    def translated() -> Iterator[None]:
        nonlocal made
        made += 1
        if made > calls:
            raise StoreUnavailable("connection lost")
        yield

    return translated


@contextmanager
def unguarded() -> Iterator[None]:
    yield


async def test_control_planes_that_start_at_once_migrate_together(
    redis_server: RedisServer,
) -> None:
    async with raw_client(redis_server) as raw:
        records = await write_layout_1(raw, 120)
        async with (
            raw_client(redis_server) as one,
            raw_client(redis_server) as two,
            raw_client(redis_server) as three,
            trio.open_nursery() as nursery,
        ):
            for client in (one, two, three):
                migrating = partial(migrate, batch=7)
                nursery.start_soon(migrating, client, KEYS, Scripts(client), unguarded)
        await assert_layout_2(raw, 120)
        async with RedisStore.open(redis_server.url) as store:
            await assert_all_there(store, records)
            assert (await verify_audit(store)).intact


class OlderWriterMeanwhile(Scripts):
    """Scripts whose first move finds the first record changed since it was read, as an older
    control plane's progress report would change it."""

    def __init__(self, client: coredis.Redis[str], changed: EventRecord) -> None:
        super().__init__(client)
        real = self.migration_move
        first = True

        async def move(**kwargs: Any) -> Any:
            nonlocal first
            if first:
                first = False
                await client.hset(KEYS.records, {changed.event.id: old_text(changed)})
            return await real(**kwargs)

        self.migration_move = move  # type: ignore[assignment]


async def test_a_record_changed_while_it_is_moved_is_moved_as_changed(
    redis_server: RedisServer,
) -> None:
    async with raw_client(redis_server) as raw:
        records = await write_layout_1(raw, 10)
        first = records[0]
        update = StatusUpdate(at=r.T0 + 50, state=EventState.FAILED, message="changed")
        changed = advance(first, update)
        assert changed is not None
        await migrate(raw, KEYS, OlderWriterMeanwhile(raw, changed), unguarded)
        await assert_layout_2(raw, 10)
        async with RedisStore.open(redis_server.url) as store:
            assert await store.get_event(first.event.id) == changed


async def test_a_fresh_store_gets_layout_2_at_its_first_call(redis_server: RedisServer) -> None:
    async with raw_client(redis_server) as raw:
        async with RedisStore.open(redis_server.url) as store:
            assert await raw.get(KEYS.layout) is None  # opening reaches nothing
            await store.ping()
        await assert_layout_2(raw, 0)


async def test_a_newer_layout_is_refused(redis_server: RedisServer) -> None:
    async with raw_client(redis_server) as raw:
        await raw.set(KEYS.layout, "3")
        async with RedisStore.open(redis_server.url) as store:
            with pytest.raises(StoreError, match="layout '3'"):
                await store.get_event("ev-1")


async def test_a_record_that_cannot_be_read_stops_the_migration_naming_it(
    redis_server: RedisServer,
) -> None:
    async with raw_client(redis_server) as raw:
        await raw.hset(KEYS.records, {"broken": "{not json"})
        async with RedisStore.open(redis_server.url) as store:
            with pytest.raises(StoreError, match="'broken' in transporter:events cannot be moved"):
                await store.ping()


# --- layout 2 ---------------------------------------------------------------------------------


async def test_a_report_writes_the_progress_and_never_the_event(redis_server: RedisServer) -> None:
    event = r.event()
    async with raw_client(redis_server) as raw, RedisStore.open(redis_server.url) as store:
        await store.submit(event, r.accepted_audit(event))
        stored = await raw.hget(KEYS.event, event.id)
        assert stored is not None and json.loads(stored) == codec.unstructure(event)
        progress = await raw.hget(KEYS.progress, event.id)
        assert progress is not None
        expected = codec.unstructure(accepted(EventRecord(event=event, seq=1)))
        del expected["event"]
        assert json.loads(progress) == expected
        # Someone changes the stored event: a report neither reads it again nor rewrites it.
        await raw.hset(KEYS.event, {event.id: stored.replace("platform", "plat4orm")})
        step = r.update(EventState.IN_PROGRESS, r.T0 + 2, Phase.APPLYING)
        updated = await store.update_event(event.id, step)
        assert updated is not None and updated.event == event
        assert "plat4orm" in (await raw.hget(KEYS.event, event.id) or "")
        # A read shows what is stored (and its agent would refuse it).
        shown = await store.get_event(event.id)
        assert shown is not None and shown.event.labels["team"] == "plat4orm"
        assert (shown.state, shown.phase) == (EventState.IN_PROGRESS, Phase.APPLYING)
