"""The Redis store behind Sentinels (a primary, two replicas, three Sentinels, all real
redis-servers): the conformance checks hold through a ``redis+sentinel://`` URL; a write
answered is on a replica, so a failover (kill -9 of the primary, or ``SENTINEL FAILOVER``) in the
middle of a stream of submits loses none; one that cannot be confirmed (too few replicas, or
by another server than took it) is StoreUnavailable; a replica dead or cut from the primary
holds writes only until the Sentinels see it; and the control plane is told when the settings,
the replicas' included, break the promise."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.bed import records as r
from tests.bed.sentinel import (
    DOWN_AFTER_MS,
    FAILOVER_WAIT,
    Logins,
    Node,
    SentinelBed,
    running_sentinels,
)
from tests.bed.store_backends import Backend
from tests.store import test_conformance as conformance
from transporter.config.store_spec import StoreSpec
from transporter.protocol.model import Event
from transporter.store import Store, StoreUnavailable, open_store, verify_audit
from transporter.store.redis.confirm import RECOUNT
from transporter.store.redis.connection import RedisConnection
from transporter.store.redis.queue_append import OutcomeUnknown, open_appender

pytestmark = pytest.mark.redis

EVENTS = 400
WRITERS = 8
FAULT_AFTER = 100
ATTEMPTS = 20
SENTINEL_INFO_PERIOD = 10.0
"""Seconds between two ``INFO`` a Sentinel sends each replica (Redis's, fixed)."""
"""Submits of one event before the test gives up: a producer retries each 503 with the same id."""

Check = Callable[[Store], Coroutine[Any, Any, None]]
CHECKS: list[Check] = [
    check
    for name, check in vars(conformance).items()
    if name.startswith("test_") and list(inspect.signature(check).parameters) == ["store"]
]
"""Every conformance check that needs only a store (not a reopening backend)."""


@pytest.fixture(scope="module")
def shared_bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelBed]:
    with running_sentinels(tmp_path_factory.mktemp("sentinels")) as bed:
        yield bed


@pytest.fixture
def bed(tmp_path: Path) -> Iterator[SentinelBed]:
    """A bed of its own, for a test that fails its primary over."""
    with running_sentinels(tmp_path / "sentinels") as bed:
        yield bed


@pytest.fixture
async def store(shared_bed: SentinelBed) -> AsyncIterator[Store]:
    assert shared_bed.primary().command("FLUSHALL") == "OK"
    async with Backend("redis", StoreSpec.parse(shared_bed.url())).open() as opened:
        yield opened


@pytest.mark.parametrize("check", CHECKS, ids=[check.__name__[5:] for check in CHECKS])
async def test_the_store_conforms_through_sentinels(check: Check, store: Store) -> None:
    await check(store)


def test_there_are_conformance_checks_to_run() -> None:
    assert len(CHECKS) >= 20


async def submitted(store: Store, event: Event) -> bool:
    """Whether ``event`` was answered stored within :data:`ATTEMPTS` submits (a producer's
    retries with the same id after each "outcome unknown")."""
    for _ in range(ATTEMPTS):
        try:
            record, _created = await store.submit(event, r.accepted_audit(event))
        except StoreUnavailable:
            continue
        assert record.event == event
        return True
    return False


async def submitted_through(bed: SentinelBed, fault: Callable[[], Node]) -> list[str]:
    """:data:`WRITERS` tasks submit :data:`EVENTS` events between them, each retried with its
    id while the store is unavailable; ``fault`` (it returns the primary it failed) once
    :data:`FAULT_AFTER` are answered. The ids answered: all of them by the end."""
    answered: list[str] = []
    halfway = trio.Event()

    async def writer(store: Store, first: int) -> None:
        for n in range(first, EVENTS, WRITERS):
            event = r.event(f"ev-{n:03d}", "agent-a", created_at=r.T0 + n)
            if await submitted(store, event):
                answered.append(event.id)
                if len(answered) == FAULT_AFTER:
                    halfway.set()

    async with open_store(StoreSpec.parse(bed.url()), call_timeout=10.0) as store:
        async with trio.open_nursery() as nursery:
            for first in range(WRITERS):
                nursery.start_soon(writer, store, first)
            await halfway.wait()
            old = await trio.to_thread.run_sync(fault)
        await trio.to_thread.run_sync(lambda: bed.wait_switched(old, replicas=1))
    return answered


async def assert_all_kept(bed: SentinelBed, ids: list[str]) -> None:
    assert len(ids) == EVENTS
    async with open_store(StoreSpec.parse(bed.url())) as store:
        missing = [event_id for event_id in ids if await store.get_event(event_id) is None]
        assert missing == []
        assert (await verify_audit(store)).broken is None


async def test_a_primary_killed_in_a_stream_of_submits_loses_no_answered_one(
    bed: SentinelBed,
) -> None:
    ids = await submitted_through(bed, bed.kill_primary)
    await assert_all_kept(bed, ids)


async def test_a_failover_in_a_stream_of_submits_loses_no_answered_one(bed: SentinelBed) -> None:
    def failover() -> Node:
        old = bed.primary()
        bed.failover()
        return old

    ids = await submitted_through(bed, failover)
    await assert_all_kept(bed, ids)


async def test_a_write_no_replica_confirms_is_unavailable_and_reads_still_answer(
    shared_bed: SentinelBed,
) -> None:
    """Three replicas wanted, two there: the write's outcome is unknown (503, never 202)."""
    spec = StoreSpec.parse(shared_bed.url("wait_replicas=3&wait_timeout_ms=100"))
    async with open_store(spec) as store:
        event = r.event("ev-unconfirmed")
        with pytest.raises(StoreUnavailable, match="2 of 3 replica\\(s\\) had the write"):
            await store.submit(event, r.accepted_audit(event))
        assert await store.get_event(event.id) is not None  # on the primary, not confirmed


async def test_the_control_plane_is_told_when_the_store_does_not_wait_for_replicas(
    shared_bed: SentinelBed,
) -> None:
    async with open_store(StoreSpec.parse(shared_bed.url())) as store:
        assert await store.durability_warnings() == []
    async with open_store(StoreSpec.parse(shared_bed.url("wait_replicas=0"))) as store:
        (warning,) = await store.durability_warnings()
        assert "Redis has 2 replica(s) but the store does not wait for them" in warning
        assert "wait_replicas=1" in warning
    async with open_store(StoreSpec.parse(shared_bed.url("wait_replicas=3"))) as store:
        (warning,) = await store.durability_warnings()
        assert "waits for 3 replica(s) but Redis has 2 connected" in warning


async def test_sentinels_that_do_not_answer_are_unavailable_not_a_hang(tmp_path: Path) -> None:
    from tests.bed.process import free_port

    url = f"redis+sentinel://127.0.0.1:{free_port()}/nothing"
    async with open_store(StoreSpec.parse(url), call_timeout=1.0) as store:
        start = trio.current_time()
        with pytest.raises(StoreUnavailable):
            await store.ping()
        assert trio.current_time() - start < 5.0


async def test_the_servers_and_the_sentinels_have_logins_of_their_own(tmp_path: Path) -> None:
    logins = Logins(servers="data pass/1", sentinels="watch:pass@2")
    with running_sentinels(tmp_path / "sentinels", logins) as bed:
        async with open_store(StoreSpec.parse(bed.url())) as store:
            event = r.event()
            await store.submit(event, r.accepted_audit(event))
            assert await store.get_event(event.id) is not None
            assert await store.durability_warnings() == []
        no_sentinel_login = bed.url().split("?")[0]
        async with open_store(StoreSpec.parse(no_sentinel_login), call_timeout=5.0) as store:
            start = trio.current_time()
            with pytest.raises(StoreUnavailable, match=r"(?i)auth") as caught:
                await store.ping()
            assert trio.current_time() - start < 2.0  # said at once, not tried again
            assert "watch:pass@2" not in str(caught.value)
            assert "data pass/1" not in str(caught.value)


async def test_a_dead_replica_holds_writes_only_until_the_sentinels_see_it_gone(
    bed: SentinelBed,
) -> None:
    """Every replica the Sentinels see up must have each write; a replica killed stops being
    one when they lose their link to it (at the latest after down-after-milliseconds), so the
    writes go on without it."""
    spec = StoreSpec.parse(bed.url("wait_timeout_ms=200"))
    async with open_store(spec) as store:
        primary = bed.primary()
        replica = next(node for node in bed.servers if node is not primary)
        replica.child.kill()
        refused = 0
        for n in range(ATTEMPTS * 5):
            event = r.event(f"ev-{n}")
            try:
                await store.submit(event, r.accepted_audit(event))
            except StoreUnavailable:
                refused += 1
                continue
            break
        else:
            pytest.fail("writes never went on without the dead replica")
        assert refused * 0.2 < DOWN_AFTER_MS / 1000 + 2 * RECOUNT + 1
        assert await store.get_event(f"ev-{refused}") is not None


async def test_a_replica_cut_from_its_primary_holds_writes_only_until_the_sentinels_see_it(
    bed: SentinelBed,
) -> None:
    """A replica the Sentinels see up but whose link to the primary is down (a wrong
    ``masterauth``, a ``REPLICAOF`` elsewhere, a sync that does not end) confirms no write: it
    stops counting once a Sentinel has read its ``INFO`` (every 10 s), not when it is repaired
    (this one never is)."""
    spec = StoreSpec.parse(bed.url("wait_timeout_ms=200"))
    async with open_store(spec) as store:
        event = r.event("ev-before")
        await store.submit(event, r.accepted_audit(event))
        bed.cut_link(bed.replicas()[0])
        start = trio.current_time()
        while True:
            event = r.event(f"ev-{trio.current_time():.3f}")
            try:
                await store.submit(event, r.accepted_audit(event))
                break
            except StoreUnavailable:
                assert trio.current_time() - start < SENTINEL_INFO_PERIOD + 2 * RECOUNT + 3
        assert await store.get_event(event.id) is not None


async def test_the_control_plane_is_told_of_each_replica_that_does_not_keep_events(
    shared_bed: SentinelBed,
) -> None:
    """Any replica may be promoted: its persistence matters as much as the primary's."""
    replica = shared_bed.replicas()[0]
    assert replica.command("CONFIG", "SET", "appendonly", "no") == "OK"
    try:
        async with open_store(StoreSpec.parse(shared_bed.url())) as store:
            (warning,) = await store.durability_warnings()
    finally:
        assert replica.command("CONFIG", "SET", "appendonly", "yes") == "OK"
    assert f"Redis replica 127.0.0.1:{replica.port} has appendonly 'no'" in warning
    assert "set appendonly yes and appendfsync always on Redis replica" in warning


async def test_a_write_is_confirmed_only_by_the_server_that_took_it(bed: SentinelBed) -> None:
    """The ``WAIT`` after a write may go out on another of the pool's connections; after a
    failover that one leads to the new primary, whose replicas would confirm the new primary's
    offset, not the write (taken by the old one, and dropped when it rejoins as a replica)."""
    async with RedisConnection.open(bed.url(), call_timeout=FAILOVER_WAIT) as connection:
        await connection.ping()
        with pytest.raises(StoreUnavailable, match="the primary changed during the write"):
            await written_across_a_failover(connection, bed)


async def test_a_write_confirmed_while_a_sentinel_fails_the_primary_over_is_unavailable(
    bed: SentinelBed,
) -> None:
    """The Sentinel leading a failover has sent the replica it promotes ``REPLICAOF NO ONE``
    (stopped here before reading it); the old primary still takes writes and the other replica
    confirms them (one replica is all the URL asks for), but that replica is to sync from the
    promoted one, which lacks them. Refused until the switch, then taken by the new primary."""
    spec = StoreSpec.parse(bed.url("wait_replicas=1&wait_timeout_ms=200"))
    # a confirmed write waits for a failover to end for half the call timeout: 2 s, less than
    # the bed's failover timeout (after which the leading Sentinel gives up, and it counts)
    async with open_store(spec, call_timeout=4.0) as store:
        assert await submitted(store, r.event("ev-before"))
        old = bed.primary()
        promoted = await trio.to_thread.run_sync(bed.stall_failover)
        try:
            event = r.event("ev-during")
            failing = f"failing 127.0.0.1:{old.port} over"
            with pytest.raises(StoreUnavailable, match=failing):
                await store.submit(event, r.accepted_audit(event))
            async with open_appender(spec.url, call_timeout=4.0) as appender:  # queue mode
                with pytest.raises(
                    OutcomeUnknown, match=f"appended as .*, but a Sentinel is {failing}"
                ):
                    await appender.append({"v": "1", "body": "{}"})
            assert bed.primary() is old  # the old primary took it, and the replica confirmed it
        finally:
            bed.resume(promoted)
        after = r.event("ev-after")
        with trio.fail_after(FAILOVER_WAIT):
            while not await submitted(store, after):
                pass  # refused until the leading Sentinel has moved the other replica too
        assert bed.primary() is promoted
        assert await store.get_event(after.id) is not None


async def written_across_a_failover(connection: RedisConnection, bed: SentinelBed) -> None:
    """One store operation: a write, then a failover before it is confirmed."""
    async with connection._guard():
        await connection._client.set("written", "on the old primary")
        old = bed.primary()
        await trio.to_thread.run_sync(bed.failover)
        await trio.to_thread.run_sync(lambda: bed.wait_switched(old, replicas=1))
        connection._client.connection_pool.disconnect()  # as a call told READONLY does


async def test_tls_to_the_sentinels_and_the_servers(tmp_path: Path) -> None:
    """``rediss+sentinel://``: every connection verified against the bed's CA, with a client
    certificate (servers that require one); through a failover too."""
    with running_sentinels(tmp_path / "sentinels", tls=True) as bed:
        assert bed.url().startswith("rediss+sentinel://")
        async with open_store(StoreSpec.parse(bed.url())) as store:
            assert await store.durability_warnings() == []  # the replicas' settings read too
            first = r.event("ev-1")
            assert await submitted(store, first)
            old = await trio.to_thread.run_sync(bed.kill_primary)
            second = r.event("ev-2")
            assert await submitted(store, second)  # on the new primary
            assert [await store.get_event(e.id) is not None for e in (first, second)] == [True] * 2
        await trio.to_thread.run_sync(lambda: bed.wait_switched(old, replicas=1))
