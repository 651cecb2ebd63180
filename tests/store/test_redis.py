"""What only the Redis store has: a server that can stop, hang, restart, want a password."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import attrs
import coredis
import pytest
import trio

from tests.bed import records as r
from tests.bed.redis import RedisServer, running_redis
from tests.store.test_rollouts import audit as rollout_audit
from tests.store.test_rollouts import rollout
from transporter.config.store_spec import StoreSpec
from transporter.protocol.model import AuditEntry, EventState
from transporter.protocol.rollout import RolloutState
from transporter.security.audit_chain import GENESIS
from transporter.store import Store, StoreUnavailable, open_store, verify_audit
from transporter.store.redis import RedisStore


async def every_call(store: Store) -> list[Callable[[], object]]:
    event = r.event()
    return [
        store.ping,
        lambda: store.submit(event, r.accepted_audit(event)),
        lambda: store.get_event("ev-1"),
        lambda: store.list_events(agent="agent-a"),
        lambda: store.update_event("ev-1", r.update(EventState.ASSIGNED, r.T0)),
        lambda: store.outbox("agent-a"),
        lambda: store.expiring(r.T0),
        lambda: store.put_agent(r.agent("a")),
        lambda: store.get_agent("a"),
        store.list_agents,
        lambda: store.audit(r.accepted_audit(event)),
        store.list_audit,
        store.audit_after,
        store.audit_head,
    ]


async def test_a_stopped_server_is_unavailable_quickly(redis_server: RedisServer) -> None:
    async with open_store(StoreSpec.parse(redis_server.url), call_timeout=5.0) as store:
        await store.ping()
        redis_server.child.stop()
        for call in await every_call(store):
            start = trio.current_time()
            with pytest.raises(StoreUnavailable):
                await call()  # type: ignore[misc]
            assert trio.current_time() - start < 2.0  # refused at once, not a timeout


@contextmanager
def frozen(server: RedisServer) -> Iterator[None]:
    """The server process stopped (SIGSTOP): connections stay open, nothing answers."""
    os.kill(server.child.popen.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.child.popen.pid, signal.SIGCONT)


async def test_a_server_that_does_not_answer_times_out_and_is_used_again_after(
    redis_server: RedisServer,
) -> None:
    async with open_store(StoreSpec.parse(redis_server.url), call_timeout=0.3) as store:
        await store.submit(r.event(), r.accepted_audit(r.event()))
        with frozen(redis_server):
            start = trio.current_time()
            with pytest.raises(StoreUnavailable, match="did not answer"):
                await store.get_event("ev-1")
            with pytest.raises(StoreUnavailable):
                await store.update_event("ev-1", r.update(EventState.ASSIGNED, r.T0 + 1))
            assert trio.current_time() - start < 2.0
        # The late replies of the abandoned calls must not be taken for the answers of new ones.
        record = await store.get_event("ev-1")
        assert record is not None
        assert record.event == r.event()
        await store.ping()
        assert [event.id for _, event in await store.outbox("agent-a")] == ["ev-1"]


async def test_with_appendfsync_always_events_survive_kill_9_of_the_server(
    redis_factory: Callable[..., RedisServer],
) -> None:
    server = redis_factory(aof=True)
    async with open_store(StoreSpec.parse(server.url)) as store:
        record, _ = await store.submit(r.event(), r.accepted_audit(r.event()))
        assigned = await store.update_event("ev-1", r.update(EventState.ASSIGNED, r.T0 + 1))
        await store.put_agent(r.agent("agent-a"))
    server.child.kill()

    with running_redis(server.folder, aof=True) as again:
        assert again.port != server.port or not server.child.alive()
        async with open_store(StoreSpec.parse(again.url)) as store:
            assert await store.get_event("ev-1") == assigned
            assert [event.id for _, event in await store.outbox("agent-a")] == ["ev-1"]
            assert await store.get_agent("agent-a") == r.agent("agent-a")
            audit = (await store.list_audit()).items
            assert [entry.event_id for entry in audit] == ["ev-1"]
            later, _ = await store.submit(r.event("ev-2"), r.accepted_audit(r.event("ev-2")))
            assert later.seq > record.seq


async def test_a_password_in_the_url_is_used(redis_server: RedisServer) -> None:
    password = "s3cret-pw"
    async with coredis.Redis.from_url(redis_server.url, decode_responses=True) as admin:
        await admin.config_set({"requirepass": password})
    with_password = f"redis://:{password}@{redis_server.host}:{redis_server.port}/0"
    async with open_store(StoreSpec.parse(with_password)) as store:
        await store.ping()
        record, created = await store.submit(r.event(), r.accepted_audit(r.event()))
        assert created
        assert await store.get_event("ev-1") == record
    async with open_store(StoreSpec.parse(redis_server.url), call_timeout=2.0) as store:
        with pytest.raises(StoreUnavailable):
            await store.ping()


async def test_stores_with_other_prefixes_or_databases_do_not_meet(
    redis_server: RedisServer,
) -> None:
    url = redis_server.url
    other_db = f"redis://{redis_server.host}:{redis_server.port}/3"
    async with (
        RedisStore.open(url) as one,
        RedisStore.open(url, prefix="other:") as two,
        RedisStore.open(other_db) as three,
    ):
        await one.submit(r.event(), r.accepted_audit(r.event()))
        for store in (two, three):
            assert await store.get_event("ev-1") is None
            assert (await store.list_events()).items == []
            assert await store.outbox("agent-a") == []
            assert (await store.list_audit()).items == []
            record, created = await store.submit(r.event(), r.accepted_audit(r.event()))
            assert created
            assert record.seq == 1


async def test_rollouts_of_other_prefixes_do_not_meet_and_every_key_has_the_prefix(
    redis_server: RedisServer,
) -> None:
    ours = rollout()
    async with (
        RedisStore.open(redis_server.url) as one,
        RedisStore.open(redis_server.url, prefix="other:") as two,
    ):
        stored, _ = await one.create_rollout(ours, rollout_audit(ours))
        await one.save_rollout(attrs.evolve(stored, state=RolloutState.COMPLETED))
        assert await two.get_rollout("ro-1") is None
        assert (await two.list_rollouts()).items == []
        assert await two.open_rollouts() == []
        theirs, created = await two.create_rollout(ours, rollout_audit(ours))
        assert created and theirs.seq == 1
    async with coredis.Redis.from_url(redis_server.url, decode_responses=True) as raw:
        keys = [str(key) async for key in raw.scan_iter()]
    assert all(key.startswith(("transporter:", "other:")) for key in keys), keys
    assert {key for key in keys if key.startswith("other:rollout")} == {
        "other:rollout",
        "other:rollout:spec",
        "other:rollout:version",
        "other:rollout:state",
        "other:rollout:seq",
        "other:rollout:open",
        "other:rollout:idx:all",
        "other:rollout:idx:kind:apply",
        "other:rollout:idx:state:running",
        "other:rollout:idx:kind:apply:state:running",
    }


async def test_agent_ids_cannot_reach_each_others_keys(redis_server: RedisServer) -> None:
    async with RedisStore.open(redis_server.url) as store:
        await store.submit(r.event("ev-1", "x"), r.accepted_audit(r.event("ev-1", "x")))
        odd = "x:state:queued"
        await store.submit(r.event("ev-2", odd), r.accepted_audit(r.event("ev-2", odd)))
        queued_x = await store.list_events(agent="x", state=EventState.QUEUED)
        assert [record.event.id for record in queued_x.items] == ["ev-1"]
        assert [record.event.id for record in (await store.list_events(agent=odd)).items] == [
            "ev-2"
        ]
        assert [event.id for _, event in await store.outbox("x")] == ["ev-1"]


async def test_audit_entries_from_before_the_chain_are_reported_not_chained(
    redis_server: RedisServer,
) -> None:
    """A stream cannot be rewritten in place, so entries written before the chain stay as they
    were: the chain goes on after them and the verifier says where it cannot vouch."""
    async with coredis.Redis.from_url(redis_server.url, decode_responses=True) as raw:
        for seq in (1, 2):
            await raw.incr("transporter:audit:seq")
            old = f'{{"seq":{seq},"at":{r.T0},"action":"x","actor":"","agent_id":"",'
            old += '"event_id":"","detail":""}'
            await raw.xadd("transporter:audit", {"entry": old}, identifier=f"{seq}-0")
    async with RedisStore.open(redis_server.url) as store:
        later = await store.audit(AuditEntry(at=r.T0, action="y"))
        assert (later.seq, later.prev_hash) == (3, GENESIS)
        assert [entry.seq for entry in await store.audit_after()] == [1, 2, 3]
        result = await verify_audit(store)
        assert result.broken is not None
        assert result.broken.seq == 1
        assert "it has no hash (written before the audit log was chained" in result.broken.reason


async def test_the_control_plane_is_told_when_redis_cannot_keep_its_promise(
    redis_factory: Callable[..., RedisServer],
) -> None:
    plain, durable = redis_factory(), redis_factory(aof=True)
    async with open_store(StoreSpec.parse(plain.url)) as store:
        (warning,) = await store.durability_warnings()
        assert "appendonly 'no'" in warning
        assert "appendfsync always" in warning
    async with open_store(StoreSpec.parse(durable.url)) as store:
        assert await store.durability_warnings() == []
