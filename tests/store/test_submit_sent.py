"""An event stored sent (store/base.py ``Sending``): ``assigned`` in the write that accepts it,
with its delivery's audit entry after its own, only when its agent has nothing unfinished after
the ``seq`` its connection read up to; else stored as any other (``queued``). On both stores."""

from __future__ import annotations

import time

from tests.bed import records as r
from transporter.cp.progress import sent
from transporter.protocol.model import EventRecord, EventState
from transporter.protocol.status import StatusUpdate
from transporter.store import Store, verify_audit


async def _submitted(store: Store, specs: list[tuple[str, str, int | None]]) -> list[EventRecord]:
    """Submit ``(id, agent, after)`` in one write (``after`` ``None``: not sent)."""
    now = time.time()
    events = [r.event(event_id, agent, created_at=now) for event_id, agent, _ in specs]
    results = await store.submit_many(
        [(event, r.accepted_audit(event)) for event in events],
        sending=[
            None if after is None else sent(event, now, after=after)
            for event, (_, _, after) in zip(events, specs, strict=True)
        ],
    )
    records = []
    for result in results:
        assert isinstance(result, tuple)
        record, created = result
        assert created
        records.append(record)
    return records


async def test_an_event_with_nothing_before_it_is_stored_sent(store: Store) -> None:
    (record,) = await _submitted(store, [("ev-1", "agent-a", 0)])
    assert record.state is EventState.ASSIGNED
    assert [(t.state, t.message) for t in record.timeline] == [
        (EventState.QUEUED, "accepted"),
        (EventState.ASSIGNED, "sent to agent"),
    ]
    stored = await store.get_event("ev-1")
    assert stored is not None
    assert (stored.state, stored.seq, stored.timeline) == (
        EventState.ASSIGNED,
        record.seq,
        record.timeline,
    )
    assert [event.id for _, event in await store.outbox("agent-a")] == ["ev-1"]  # unfinished
    assert (await store.list_events(state=EventState.ASSIGNED)).items[0].event.id == "ev-1"
    assert (await store.list_events(state=EventState.QUEUED)).items == []
    cancel = StatusUpdate(at=time.time(), state=EventState.CANCELLED, message="too late")
    assert await store.update_event("ev-1", cancel) is None  # sent: it ends on its agent
    entries = await store.audit_after(0)
    assert [(e.action, e.event_id) for e in entries] == [
        ("event.accepted", "ev-1"),
        ("event.delivered", "ev-1"),
    ]
    assert (await verify_audit(store)).intact


async def test_an_event_behind_an_unread_one_is_stored_queued(store: Store) -> None:
    (first,) = await _submitted(store, [("ev-1", "agent-a", None)])
    # the connection read up to before ev-1 (another replica stored it; its hint not yet here)
    (second,) = await _submitted(store, [("ev-2", "agent-a", first.seq - 1)])
    assert second.state is EventState.QUEUED
    assert [event.id for _, event in await store.outbox("agent-a")] == ["ev-1", "ev-2"]
    # read up to ev-1, which is in flight: the next is the next to send
    (third,) = await _submitted(store, [("ev-3", "agent-a", second.seq)])
    assert third.state is EventState.ASSIGNED
    assert [e.action for e in await store.audit_after(0)] == [
        "event.accepted",
        "event.accepted",
        "event.accepted",
        "event.delivered",
    ]
    assert (await verify_audit(store)).intact


async def test_a_batch_mixes_events_stored_sent_queued_and_refused_sends(store: Store) -> None:
    records = await _submitted(
        store,
        [
            ("ev-1", "agent-a", None),
            ("ev-2", "agent-a", 0),  # ev-1 came first: stored queued
            ("ev-3", "agent-b", 0),  # sent
            ("ev-4", "agent-c", None),
            ("ev-5", "agent-c", 0),  # ev-4 came first
            ("ev-6", "agent-d", 0),  # sent
        ],
    )
    states = {record.event.id: record.state for record in records}
    queued, assigned = EventState.QUEUED, EventState.ASSIGNED
    assert states == {
        "ev-1": queued,
        "ev-2": queued,
        "ev-3": assigned,
        "ev-4": queued,
        "ev-5": queued,
        "ev-6": assigned,
    }
    for agent in ("agent-a", "agent-c"):  # each agent's events in the batch's order
        seqs = [record.seq for record in records if record.event.target_agent == agent]
        assert seqs == sorted(seqs)
    for record in records:
        stored = await store.get_event(record.event.id)
        assert stored is not None
        assert stored.state is record.state
    entries = [(e.action, e.event_id) for e in await store.audit_after(0)]
    assert sorted(entries) == [  # in the order written (Redis writes again what its batch
        ("event.accepted", "ev-1"),  # script could not: after the others)
        ("event.accepted", "ev-2"),
        ("event.accepted", "ev-3"),
        ("event.accepted", "ev-4"),
        ("event.accepted", "ev-5"),
        ("event.accepted", "ev-6"),
        ("event.delivered", "ev-3"),
        ("event.delivered", "ev-6"),
    ]
    for sent_id in ("ev-3", "ev-6"):  # each delivery right after its acceptance
        at = entries.index(("event.accepted", sent_id))
        assert entries[at + 1] == ("event.delivered", sent_id)
    assert (await verify_audit(store)).intact


async def test_an_event_stored_again_is_not_sent_again(store: Store) -> None:
    (record,) = await _submitted(store, [("ev-1", "agent-a", None)])
    event = record.event
    (again,) = await store.submit_many(
        [(event, r.accepted_audit(event))], sending=[sent(event, time.time(), after=0)]
    )
    assert isinstance(again, tuple)
    assert again[1] is False
    assert again[0].state is EventState.QUEUED  # as stored: the same request, nothing written
    assert len(await store.audit_after(0)) == 1


async def test_an_event_is_not_stored_sent_when_the_seq_went_back_below_what_was_read(
    store: Store,
) -> None:
    """A Redis failover can lose the counter's last steps (a SQLite file, a restored backup):
    an event under what the connection read may not have been read, so nothing goes at once."""
    await _submitted(store, [("ev-1", "agent-a", None)])
    (record,) = await _submitted(store, [("ev-2", "agent-b", 1000)])
    assert record.state is EventState.QUEUED
    assert [e.action for e in await store.audit_after(0)] == ["event.accepted"] * 2
    assert (await verify_audit(store)).intact
