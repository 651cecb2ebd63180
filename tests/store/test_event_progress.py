"""``event_progress``: what a rollout's engine reads of its children every few seconds, in every
store, without reading their payloads (it once decoded every child's manifests at each look)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import coredis
import pytest

from tests.bed import records as r
from tests.bed.redis import RedisServer
from tests.bed.store_backends import Backend
from transporter.config.store_spec import StoreSpec
from transporter.protocol.model import EventRecord, EventState, Phase, ResourceStatus
from transporter.store import EventProgress, Store, StoreError
from transporter.store.redis.keys import DEFAULT_PREFIX, Keys

KEYS = Keys(DEFAULT_PREFIX)


async def submit_children(store: Store, count: int, rollout_id: str = "ro-1") -> list[EventRecord]:
    events = [
        attrs.evolve(
            r.event(f"{rollout_id}_agent-{n}", f"agent-{n}", created_at=r.T0 + n, ttl=60 + n),
            rollout_id=rollout_id,
        )
        for n in range(count)
    ]
    return await r.submitted(store, events)


async def test_it_answers_in_the_order_asked_as_get_events_would(store: Store) -> None:
    await submit_children(store, 4)
    await store.update_event("ro-1_agent-1", r.update(EventState.ASSIGNED, r.T0 + 10))
    for update in r.JOURNEY:
        await store.update_event("ro-1_agent-2", update)
    await store.update_event(
        "ro-1_agent-3",
        r.update(EventState.CANCELLED, r.T0 + 20, message="rollout cancelled"),
    )
    single = r.event("single", "agent-9")
    await store.submit(single, r.accepted_audit(single))
    asked = ["ro-1_agent-3", "nope", "ro-1_agent-0", "ro-1_agent-2", "single", "ro-1_agent-3"]
    records = await store.get_events(asked)
    expected = [None if record is None else EventProgress.of(record) for record in records]
    assert await store.event_progress(asked) == expected
    assert expected[1] is None
    done = expected[3]
    assert done is not None
    assert (done.state, done.phase, done.message) == (
        EventState.COMPLETED,
        Phase.COMPLETED,
        "2 resources",
    )
    assert done.resource_statuses == (ResourceStatus.CREATED, ResourceStatus.FAILED)
    assert (done.rollout_id, done.target_agent) == ("ro-1", "agent-2")
    assert done.expires_at == r.T0 + 2 + 62
    assert expected[4] is not None and expected[4].rollout_id == ""
    assert await store.event_progress([]) == []


async def test_it_reads_more_ids_than_one_statement_holds(store: Store) -> None:
    records = await submit_children(store, 1100)
    asked = [record.event.id for record in records[::-1]] + ["ghost"]
    found = await store.event_progress(asked)
    assert found == [EventProgress.of(record) for record in records[::-1]] + [None]


@asynccontextmanager
async def raw_redis(backend: Backend) -> AsyncIterator[coredis.Redis[str]]:
    assert backend.redis is not None
    async with coredis.Redis.from_url(backend.redis.url, decode_responses=True) as raw:
        yield raw


async def spoil_events(backend: Backend, event_ids: list[str]) -> None:
    """Make the stored events unreadable (their progress left as it is)."""
    if backend.kind == "sqlite":
        assert backend.spec.path is not None
        conn = sqlite3.connect(backend.spec.path)
        conn.executemany(
            "UPDATE event_bodies SET event = '{' WHERE seq = (SELECT seq FROM events WHERE id = ?)",
            [(i,) for i in event_ids],
        )
        conn.commit()
        conn.close()
        return
    async with raw_redis(backend) as raw:
        await raw.hset(KEYS.event, dict.fromkeys(event_ids, "{"))


async def test_it_never_reads_an_event_itself(backend: Backend) -> None:
    """The events' text is spoilt behind the store's back (a new store: nothing decoded yet):
    reading them whole fails, their progress still reads, as it never touches them."""
    async with backend.open() as store:
        records = await submit_children(store, 3)
        await store.update_event("ro-1_agent-0", r.update(EventState.ASSIGNED, r.T0 + 10))
        ids = [record.event.id for record in records]
        expected = [EventProgress.of(record) for record in await store.get_events(ids) if record]
    await spoil_events(backend, ids)
    async with backend.open() as store:
        assert await store.event_progress(ids) == expected
        with pytest.raises(StoreError, match="cannot be read"):
            await store.get_events(ids)


@pytest.mark.redis
async def test_on_redis_an_event_stored_without_its_brief_is_read_once_and_briefed(
    redis_server: RedisServer,
) -> None:
    """Events stored before briefs were (by an older control plane, or layout 1's migration)
    have none: their event is read for it, and the brief written for the next look."""
    backend = Backend("redis", StoreSpec.parse(redis_server.url), redis_server)
    async with backend.open() as store:
        records = await submit_children(store, 3)
        ids = [record.event.id for record in records]
        async with raw_redis(backend) as raw:
            assert await raw.hlen(KEYS.brief) == 3
            await raw.hdel(KEYS.brief, ids[:2])
        assert await store.event_progress(ids) == [EventProgress.of(record) for record in records]
        async with raw_redis(backend) as raw:
            assert await raw.hlen(KEYS.brief) == 3
    await spoil_events(backend, ids)
    async with backend.open() as store:
        assert await store.event_progress(ids) == [EventProgress.of(record) for record in records]
