"""Rollouts in every store: created once, saved whole over a version, listed, and the open ones
found from an index; their audit entries join the one chain."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
import trio

from tests.bed import records as r
from tests.bed.store_backends import Backend
from transporter.protocol.model import Action, AuditEntry, K8sPayload
from transporter.protocol.rollout import (
    PENDING,
    RolloutCluster,
    RolloutEntry,
    RolloutKind,
    RolloutRecord,
    RolloutSpec,
    RolloutState,
    Strategy,
    Wave,
    child_event_id,
)
from transporter.store import InvalidCursor, Store, verify_audit
from transporter.store.base import RolloutConflict


def rollout(
    rollout_id: str = "ro-1",
    *,
    kind: RolloutKind = RolloutKind.APPLY,
    agents: int = 3,
    created_at: float = r.T0,
    state: RolloutState = RolloutState.RUNNING,
) -> RolloutRecord:
    """A record with every field of its spec set, ``agents`` clusters of wave 0 or 1."""
    names = tuple(f"agent-{n}" for n in range(agents))
    spec = RolloutSpec(
        id=rollout_id,
        kind=kind,
        payload=K8sPayload(
            manifests=(r.MANIFEST,),
            action=Action.APPLY,
            wait_ready=True,
            ready_timeout=90,
            expect={"/ConfigMap/default/café-☃": "absent"},
        ),
        created_at=created_at,
        ttl=600,
        created_by="alice",
        selector="env=prod",
        strategy=Strategy(
            max_parallel=2,
            max_failures=1,
            waves=(Wave("tier=canary", pause=30), Wave("", approval=True)),
        ),
        standing=True,
        allow_empty=True,
        priority=5,
        labels={"team": "platform"},
        scope=("agent-*",),
        plan_id="plan-1",
        expects={"agent-0": {"apps/Deployment/default/web": "sha256:0f"}},
    )
    clusters = tuple(
        RolloutCluster(name, n % 2, child_event_id(rollout_id, name))
        for n, name in enumerate(names)
    )
    return RolloutRecord(
        spec=spec,
        state=state,
        clusters=clusters,
        timeline=(RolloutEntry(created_at, "accepted", f"{agents} clusters"),),
        resume_at=created_at + 30.25,
        updated_at=created_at,
    )


def audit(record: RolloutRecord, action: str = "rollout.accepted") -> AuditEntry:
    return AuditEntry(
        at=record.spec.created_at, action=action, actor="alice", event_id=record.spec.id
    )


async def create(store: Store, record: RolloutRecord) -> RolloutRecord:
    stored, created = await store.create_rollout(record, audit(record))
    assert created
    return stored


async def moved(store: Store, stored: RolloutRecord, **changes: Any) -> RolloutRecord:
    saved = await store.save_rollout(attrs.evolve(stored, **changes))
    assert saved is not None
    return saved


async def audit_actions(store: Store) -> list[str]:
    return [entry.action for entry in (await store.list_audit(limit=1000)).items]


# --- create and get --------------------------------------------------------------------------


async def test_a_created_rollout_reads_back_whole_at_version_1(store: Store) -> None:
    record = rollout()
    stored, created = await store.create_rollout(record, audit(record))
    assert created
    assert stored.seq >= 1
    assert stored == attrs.evolve(record, version=1, seq=stored.seq)
    assert await store.get_rollout("ro-1") == stored
    assert await store.get_rollout("ro-2") is None
    (entry,) = (await store.list_audit()).items
    assert r.unsealed(entry) == audit(record)


async def test_the_same_spec_again_is_the_stored_rollout_and_writes_nothing(store: Store) -> None:
    first = await create(store, rollout())
    saved = await moved(store, first, state=RolloutState.PAUSED)
    retry = rollout(created_at=r.T0 + 7.5)  # a producer's retry: only its time differs
    again, created = await store.create_rollout(retry, audit(retry))
    assert not created
    assert again == saved
    # The same request with a token made again under the same name: the same rollout.
    other_token = attrs.evolve(retry, spec=attrs.evolve(retry.spec, token_id="t-2"))
    again, created = await store.create_rollout(other_token, audit(other_token))
    assert not created
    assert again == saved and again.spec.token_id == saved.spec.token_id
    assert await audit_actions(store) == ["rollout.accepted"]


@pytest.mark.parametrize(
    "change",
    [
        {"ttl": 601},
        {"selector": "env=dev"},
        {"kind": RolloutKind.PLAN},
        {"strategy": Strategy(max_parallel=3)},
        {"payload": K8sPayload(manifests=("kind: Other\n",))},
    ],
)
async def test_another_spec_under_a_taken_id_is_a_conflict(
    store: Store, change: dict[str, Any]
) -> None:
    first = await create(store, rollout())
    other = rollout()
    other = attrs.evolve(other, spec=attrs.evolve(other.spec, **change))
    with pytest.raises(RolloutConflict) as caught:
        await store.create_rollout(other, audit(other))
    assert caught.value.rollout_id == "ro-1"
    assert await store.get_rollout("ro-1") == first
    assert await audit_actions(store) == ["rollout.accepted"]


async def test_each_rollout_gets_a_larger_seq_whatever_its_record_said(store: Store) -> None:
    seqs = [
        (await create(store, attrs.evolve(rollout(f"ro-{n}"), seq=99, version=42))).seq
        for n in range(4)
    ]
    assert seqs == sorted(set(seqs))
    assert [(await store.get_rollout(f"ro-{n}")) for n in range(4)] == [
        attrs.evolve(rollout(f"ro-{n}"), seq=seq, version=1) for n, seq in enumerate(seqs)
    ]


# --- save over a version ---------------------------------------------------------------------


async def test_a_save_over_the_stored_version_applies_with_its_audit_entries(
    store: Store,
) -> None:
    stored = await create(store, rollout())
    changed = attrs.evolve(
        stored,
        state=RolloutState.AWAITING_APPROVAL,
        wave=1,
        approved=(0,),
        clusters=(
            attrs.evolve(stored.clusters[0], state="completed", message="2 created"),
            *stored.clusters[1:],
        ),
        timeline=(*stored.timeline, RolloutEntry(r.T0 + 9, "awaiting_approval", "", 1)),
        updated_at=r.T0 + 9,
    )
    waiting = audit(stored, "rollout.awaiting_approval")
    wave = audit(stored, "rollout.wave_started")
    saved = await store.save_rollout(changed, [wave, waiting])
    assert saved == attrs.evolve(changed, version=2)
    assert await store.get_rollout("ro-1") == saved
    assert await audit_actions(store) == [
        "rollout.awaiting_approval",
        "rollout.wave_started",
        "rollout.accepted",
    ]
    assert (await verify_audit(store)).intact


async def test_a_save_over_another_version_or_of_an_unknown_rollout_writes_nothing(
    store: Store,
) -> None:
    stored = await create(store, rollout())
    saved = await moved(store, stored, message="first")
    for stale in (stored, attrs.evolve(saved, version=saved.version + 1)):
        late = attrs.evolve(stale, state=RolloutState.CANCELLED, message="late")
        assert await store.save_rollout(late, [audit(stored, "rollout.cancelled")]) is None
    unknown = attrs.evolve(rollout("ro-nope"), version=1)
    assert await store.save_rollout(unknown, [audit(unknown, "rollout.cancelled")]) is None
    assert await store.get_rollout("ro-1") == saved
    assert await store.get_rollout("ro-nope") is None
    assert await audit_actions(store) == ["rollout.accepted"]
    assert await store.open_rollouts() == ["ro-1"]


async def test_a_save_keeps_the_stored_seq(store: Store) -> None:
    stored = await create(store, rollout())
    saved = await moved(store, stored, seq=stored.seq + 1000, message="x")
    assert saved.seq == stored.seq
    assert await store.get_rollout("ro-1") == saved


async def test_of_savers_from_one_version_exactly_one_wins(store: Store) -> None:
    stored = await create(store, rollout())
    results: list[RolloutRecord | None] = []

    async def save(n: int) -> None:
        mine = attrs.evolve(stored, message=f"saver {n}", updated_at=r.T0 + n)
        results.append(await store.save_rollout(mine, [audit(stored, f"rollout.saver{n}")]))

    async with trio.open_nursery() as nursery:
        for n in range(20):
            nursery.start_soon(save, n)
    (winner,) = [result for result in results if result is not None]
    assert winner.version == 2
    assert await store.get_rollout("ro-1") == winner
    actions = await audit_actions(store)
    assert actions == [f"rollout.saver{winner.message.split()[-1]}", "rollout.accepted"]


async def test_replicas_saving_one_rollout_never_undo_each_other(backend: Backend) -> None:
    """Two stores on the same data (two control planes): each reads, changes, saves; the one
    that loses reads again and retries, and every change is kept."""
    async with backend.open() as first, backend.open() as second:
        await create(first, rollout())

        async def approve(store: Store, wave: int) -> None:
            while True:
                current = await store.get_rollout("ro-1")
                assert current is not None
                changed = attrs.evolve(current, approved=(*current.approved, wave))
                if await store.save_rollout(changed) is not None:
                    return

        async with trio.open_nursery() as nursery:
            for wave in range(10):
                nursery.start_soon(approve, first if wave % 2 else second, wave)
        final = await second.get_rollout("ro-1")
        assert final is not None
        assert sorted(final.approved) == list(range(10))
        assert final.version == 11
        assert await first.get_rollout("ro-1") == final


async def test_of_creators_of_one_id_exactly_one_creates(backend: Backend) -> None:
    async with backend.open() as first, backend.open() as second:
        results: list[tuple[RolloutRecord, bool]] = []

        async def create_on(store: Store, n: int) -> None:
            record = rollout(created_at=r.T0 + n)
            results.append(await store.create_rollout(record, audit(record)))

        async with trio.open_nursery() as nursery:
            for n in range(10):
                nursery.start_soon(create_on, first if n % 2 else second, n)
        (created,) = [stored for stored, fresh in results if fresh]
        assert [stored for stored, _ in results] == [created] * 10
        assert await audit_actions(first) == ["rollout.accepted"]


async def test_replicas_saving_with_audit_entries_keep_one_chain(backend: Backend) -> None:
    """Saves with entries from two stores at once: each store's view of the chain's head goes
    stale in turn, and every entry is appended once, in one unbroken chain."""
    async with backend.open() as first, backend.open() as second:
        for n in range(4):
            await create(first, rollout(f"ro-{n}", agents=1))

        async def walk(store: Store, rollout_id: str) -> None:
            for step in range(5):
                current = await store.get_rollout(rollout_id)
                assert current is not None
                changed = attrs.evolve(current, message=f"step {step}")
                entries = [audit(current, f"rollout.{rollout_id}.{step}.{k}") for k in range(2)]
                assert await store.save_rollout(changed, entries) is not None

        async with trio.open_nursery() as nursery:
            for n in range(4):
                nursery.start_soon(walk, first if n % 2 else second, f"ro-{n}")
        entries = (await second.list_audit(limit=1000)).items
        assert len(entries) == 4 + 4 * 5 * 2
        for n in range(4):
            mine = [e.action for e in entries[::-1] if e.action.startswith(f"rollout.ro-{n}.")]
            assert mine == [f"rollout.ro-{n}.{step}.{k}" for step in range(5) for k in range(2)]
        result = await verify_audit(first)
        assert result.intact and result.count == 44


# --- listing and the open ones ---------------------------------------------------------------


async def test_list_rollouts_is_newest_first_and_filters(store: Store) -> None:
    kinds = [RolloutKind.APPLY, RolloutKind.PLAN] * 3
    records = [await create(store, rollout(f"ro-{n}", kind=kind)) for n, kind in enumerate(kinds)]
    await moved(store, records[1], state=RolloutState.COMPLETED)
    await moved(store, records[2], state=RolloutState.FAILED)
    await moved(store, records[4], state=RolloutState.COMPLETED)

    async def listed(**filters: object) -> list[str]:
        page = await store.list_rollouts(**filters)  # type: ignore[arg-type]
        assert page.cursor is None
        return [record.spec.id for record in page.items]

    assert await listed() == ["ro-5", "ro-4", "ro-3", "ro-2", "ro-1", "ro-0"]
    assert await listed(kind=RolloutKind.PLAN) == ["ro-5", "ro-3", "ro-1"]
    assert await listed(kind=RolloutKind.APPLY) == ["ro-4", "ro-2", "ro-0"]
    assert await listed(state=RolloutState.COMPLETED) == ["ro-4", "ro-1"]
    assert await listed(state=RolloutState.RUNNING) == ["ro-5", "ro-3", "ro-0"]
    assert await listed(state=RolloutState.CANCELLED) == []
    assert await listed(state=RolloutState.COMPLETED, kind=RolloutKind.PLAN) == ["ro-1"]
    assert await listed(state=RolloutState.RUNNING, kind=RolloutKind.APPLY) == ["ro-0"]
    assert (await store.list_rollouts(state=RolloutState.FAILED)).items == [
        await store.get_rollout("ro-2")
    ]


@pytest.mark.parametrize("limit", [1, 2, 3, 7, 5000])
async def test_rollout_pages_cover_every_rollout_once(store: Store, limit: int) -> None:
    records = [await create(store, rollout(f"ro-{n}", agents=1)) for n in range(7)]
    await moved(store, records[3], state=RolloutState.CANCELLED)
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = await store.list_rollouts(limit=limit, cursor=cursor)
        assert 1 <= len(page.items) <= limit
        seen += [record.spec.id for record in page.items]
        if page.cursor is None:
            break
        cursor = page.cursor
    assert seen == [f"ro-{n}" for n in range(6, -1, -1)]
    filtered: list[str] = []
    cursor = None
    while True:
        page = await store.list_rollouts(state=RolloutState.RUNNING, limit=2, cursor=cursor)
        filtered += [record.spec.id for record in page.items]
        if page.cursor is None:
            break
        cursor = page.cursor
    assert filtered == ["ro-6", "ro-5", "ro-4", "ro-2", "ro-1", "ro-0"]


@pytest.mark.parametrize("cursor", ["abc", "-1", "0", "1.5", "", "٣"])
async def test_a_rollout_cursor_the_store_never_gave_is_refused(store: Store, cursor: str) -> None:
    await create(store, rollout())
    with pytest.raises(InvalidCursor):
        await store.list_rollouts(cursor=cursor)


async def test_open_rollouts_are_the_unfinished_ones_oldest_first(store: Store) -> None:
    records = [await create(store, rollout(f"ro-{n}", agents=1)) for n in range(6)]
    assert await store.open_rollouts() == [f"ro-{n}" for n in range(6)]
    await moved(store, records[0], state=RolloutState.COMPLETED)
    await moved(store, records[1], state=RolloutState.STANDING)
    await moved(store, records[2], state=RolloutState.PAUSED)
    await moved(store, records[3], state=RolloutState.AWAITING_APPROVAL)
    failed = await moved(store, records[4], state=RolloutState.FAILED)
    await moved(store, records[5], state=RolloutState.CANCELLED)
    assert await store.open_rollouts() == ["ro-1", "ro-2", "ro-3"]
    # A final state is final for the engine; the store only follows what is saved.
    await moved(store, failed, state=RolloutState.RUNNING)
    assert await store.open_rollouts() == ["ro-1", "ro-2", "ro-3", "ro-4"]
    finished = await create(store, rollout("ro-done", state=RolloutState.COMPLETED))
    assert finished.state is RolloutState.COMPLETED
    assert "ro-done" not in await store.open_rollouts()


# --- size, restart, the chain ----------------------------------------------------------------


async def test_a_rollout_of_thousands_of_clusters_is_stored_and_saved(store: Store) -> None:
    record = rollout(agents=3000)
    stored = await create(store, record)
    assert await store.get_rollout("ro-1") == stored
    clusters = tuple(
        attrs.evolve(cluster, state="queued", phase="", updated_at=r.T0 + 1)
        if cluster.state == PENDING
        else cluster
        for cluster in stored.clusters
    )
    saved = await moved(store, stored, clusters=clusters)
    assert await store.get_rollout("ro-1") == saved
    assert (await store.list_rollouts()).items == [saved]


async def test_rollouts_survive_closing_and_opening_again(backend: Backend) -> None:
    async with backend.open() as store:
        first = await create(store, rollout("ro-1"))
        await create(store, rollout("ro-2", kind=RolloutKind.PLAN))
        saved = await moved(store, first, state=RolloutState.COMPLETED)
        before = await store.list_rollouts()
    async with backend.open() as store:
        assert await store.list_rollouts() == before
        assert await store.get_rollout("ro-1") == saved
        assert await store.open_rollouts() == ["ro-2"]
        assert await store.save_rollout(first) is None
        again = await moved(store, saved, message="after the restart")
        assert again.version == 3
        later = await create(store, rollout("ro-3"))
        assert later.seq > before.items[0].seq
        result = await verify_audit(store)
        assert result.intact
        assert result.count == 3
