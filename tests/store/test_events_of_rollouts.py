"""What rollouts need of events in every store: many read at once (``get_events``), and a
queued event cancelled (never sent, so final: out of the outbox, the expiry and the counts)."""

from __future__ import annotations

import pytest

from tests.bed import records as r
from tests.bed.store_backends import Backend
from transporter.protocol.model import AuditEntry, EventRecord, EventState, Phase
from transporter.store import Store


async def submit_all(store: Store, count: int, *, agents: int = 3) -> list[EventRecord]:
    events = [
        r.event(f"ev-{n}", f"agent-{n % agents}", created_at=r.T0 + n, manifests=(f"n: {n}\n",))
        for n in range(count)
    ]
    return await r.submitted(store, events)


def cancelled_audit(event_id: str) -> AuditEntry:
    return AuditEntry(at=r.T0 + 50, action="event.cancelled", actor="alice", event_id=event_id)


# --- get_events ------------------------------------------------------------------------------


async def test_get_events_answers_in_the_order_asked_with_none_for_unknown_ids(
    store: Store,
) -> None:
    records = await submit_all(store, 5)
    await store.update_event("ev-3", r.update(EventState.ASSIGNED, r.T0 + 10))
    ev3 = await store.get_event("ev-3")
    asked = ["ev-4", "nope", "ev-0", "ev-3", "ev-4", "", "ev-1"]
    assert await store.get_events(asked) == [
        records[4],
        None,
        records[0],
        ev3,
        records[4],
        None,
        records[1],
    ]
    assert await store.get_events([]) == []
    assert await store.get_events(["nope"]) == [None]


async def test_get_events_reads_more_ids_than_one_statement_holds(store: Store) -> None:
    records = await submit_all(store, 1200, agents=40)
    asked = [f"ev-{n}" for n in range(1199, -1, -2)] + [f"ghost-{n}" for n in range(300)]
    found = await store.get_events(asked)
    assert found[:600] == records[1199::-2]
    assert found[600:] == [None] * 300


async def test_get_events_sees_what_another_writer_stored(backend: Backend) -> None:
    async with backend.open() as first, backend.open() as second:
        await submit_all(first, 3)
        assert await first.get_events(["ev-1"]) == [await first.get_event("ev-1")]  # remembered
        moved = await second.update_event("ev-1", r.update(EventState.ASSIGNED, r.T0 + 10))
        assert moved is not None
        assert await first.get_events(["ev-1", "ev-0"]) == [moved, await first.get_event("ev-0")]


# --- cancelled -------------------------------------------------------------------------------


async def test_a_queued_event_is_cancelled_and_leaves_every_unfinished_index(
    store: Store,
) -> None:
    await submit_all(store, 3, agents=1)
    update = r.update(EventState.CANCELLED, r.T0 + 50, None, "cancelled by alice")
    record = await store.update_event("ev-1", update, audit=cancelled_audit("ev-1"))
    assert record is not None
    assert record.state is EventState.CANCELLED
    assert record.timeline[-1].state is EventState.CANCELLED
    assert await store.get_event("ev-1") == record
    assert [event.id for _, event in await store.outbox("agent-0")] == ["ev-0", "ev-2"]
    assert sorted(await store.expiring(r.T0 + 10_000)) == ["ev-0", "ev-2"]
    counts = await store.count_unfinished()
    assert {state: n for state, n in counts.items() if n} == {EventState.QUEUED: 2}
    listed = await store.list_events(state=EventState.CANCELLED)
    assert listed.items == [record]
    queued = await store.list_events(state=EventState.QUEUED)
    assert [item.event.id for item in queued.items] == ["ev-2", "ev-0"]
    agent_cancelled = await store.list_events(agent="agent-0", state=EventState.CANCELLED)
    assert agent_cancelled.items == [record]
    actions = [entry.action for entry in (await store.list_audit()).items]
    assert actions[0] == "event.cancelled"


async def test_a_cancelled_event_is_final(store: Store) -> None:
    await submit_all(store, 1)
    update = r.update(EventState.CANCELLED, r.T0 + 50)
    cancelled = await store.update_event("ev-0", update)
    assert cancelled is not None
    for state in EventState:
        later = r.update(state, r.T0 + 60, Phase.APPLYING, "late")
        assert await store.update_event("ev-0", later) is None
    assert await store.get_event("ev-0") == cancelled


@pytest.mark.parametrize(
    "steps",
    [
        [r.update(EventState.ASSIGNED, r.T0 + 10)],
        [
            r.update(EventState.ASSIGNED, r.T0 + 10),
            r.update(EventState.IN_PROGRESS, r.T0 + 11, Phase.APPLYING),
        ],
        [r.update(EventState.COMPLETED, r.T0 + 10, Phase.COMPLETED)],
        [r.update(EventState.EXPIRED, r.T0 + 10)],
    ],
    ids=["assigned", "in_progress", "completed", "expired"],
)
async def test_an_event_that_was_sent_or_is_final_cannot_be_cancelled(
    store: Store, steps: list[object]
) -> None:
    await submit_all(store, 1)
    for step in steps:
        assert await store.update_event("ev-0", step) is not None  # type: ignore[arg-type]
    before = await store.get_event("ev-0")
    audit_before = (await store.list_audit()).items
    counts_before = await store.count_unfinished()
    update = r.update(EventState.CANCELLED, r.T0 + 50)
    assert await store.update_event("ev-0", update, audit=cancelled_audit("ev-0")) is None
    assert await store.update_many([("ev-0", update, cancelled_audit("ev-0"))]) == [None]
    assert await store.get_event("ev-0") == before
    assert (await store.list_audit()).items == audit_before
    assert await store.count_unfinished() == counts_before
    assert (await store.list_events(state=EventState.CANCELLED)).items == []


async def test_cancelling_in_a_batch_applies_to_the_queued_ones_only(store: Store) -> None:
    await submit_all(store, 4, agents=2)
    await store.update_event("ev-2", r.update(EventState.ASSIGNED, r.T0 + 10))
    update = r.update(EventState.CANCELLED, r.T0 + 50)
    results = await store.update_many(
        [(f"ev-{n}", update, cancelled_audit(f"ev-{n}")) for n in range(4)]
    )
    assert [None if record is None else record.state for record in results] == [
        EventState.CANCELLED,
        EventState.CANCELLED,
        None,
        EventState.CANCELLED,
    ]
    assert [event.id for _, event in await store.outbox("agent-0")] == ["ev-2"]
    assert await store.outbox("agent-1") == []
    cancelled = await store.list_events(state=EventState.CANCELLED)
    assert [record.event.id for record in cancelled.items] == ["ev-3", "ev-1", "ev-0"]
    audit = (await store.list_audit()).items
    assert [entry.event_id for entry in audit if entry.action == "event.cancelled"] == [
        "ev-3",
        "ev-1",
        "ev-0",
    ]


async def test_a_cancelled_event_stays_cancelled_after_a_restart(backend: Backend) -> None:
    async with backend.open() as store:
        await submit_all(store, 2, agents=1)
        record = await store.update_event("ev-0", r.update(EventState.CANCELLED, r.T0 + 50))
        assert record is not None
    async with backend.open() as store:
        assert await store.get_event("ev-0") == record
        assert [event.id for _, event in await store.outbox("agent-0")] == ["ev-1"]
        again = r.update(EventState.ASSIGNED, r.T0 + 60)
        assert await store.update_event("ev-0", again) is None
