"""One suite, every store: what the control plane relies on, against a real file and server."""

from __future__ import annotations

import attrs
import pytest
import trio

from tests.bed import records as r
from tests.bed.store_backends import Backend
from transporter.protocol.model import (
    AgentStatus,
    AuditEntry,
    Event,
    EventRecord,
    EventState,
    Phase,
    TimelineEntry,
)
from transporter.protocol.status import accepted, advance
from transporter.store import EventConflict, InvalidCursor, Store


async def submit(store: Store, event: Event) -> EventRecord:
    record, created = await store.submit(event, r.accepted_audit(event))
    assert created
    return record


async def submit_many(store: Store, agents: list[str]) -> list[EventRecord]:
    """One event per entry of ``agents``, in that order, ``created_at`` one second apart."""
    return [
        await submit(store, r.event(f"ev-{n}", agent, created_at=r.T0 + n))
        for n, agent in enumerate(agents)
    ]


async def all_audit(store: Store) -> list[AuditEntry]:
    page = await store.list_audit(limit=1000)
    assert page.cursor is None
    return page.items


# --- submit and get --------------------------------------------------------------------------


async def test_ping_answers(store: Store) -> None:
    await store.ping()


async def test_submit_then_get_keeps_every_field(store: Store) -> None:
    event = r.event()
    record, created = await store.submit(event, r.accepted_audit(event))
    assert created
    assert record.seq >= 1
    assert record == accepted(EventRecord(event=event, seq=record.seq))
    assert record.state is EventState.QUEUED
    assert record.timeline == (TimelineEntry(r.T0, EventState.QUEUED, None, "accepted"),)
    got = await store.get_event(event.id)
    assert got == record
    assert got is not None
    assert got.event.created_at == r.T0  # to the last bit
    assert got.event.payload.manifests == event.payload.manifests


async def test_any_text_round_trips(store: Store) -> None:
    odd = 'quote " backslash \\ nul \x00 snow ☃ emoji 🚀 lone surrogate \ud800 end'
    event = attrs.evolve(
        r.event(),
        payload=attrs.evolve(r.event().payload, manifests=(odd,)),
        labels={odd: odd},
        created_by=odd,
    )
    record = await submit(store, event)
    assert await store.get_event(event.id) == record
    assert record.event == event
    update = r.update(EventState.FAILED, r.T0 + 1, None, odd)
    failed = await store.update_event(event.id, update)
    assert failed is not None
    assert failed.message == odd
    assert await store.get_event(event.id) == failed
    entry = await store.audit(AuditEntry(at=r.T0, action="x", detail=odd))
    assert entry.detail == odd
    assert (await store.list_audit(limit=1)).items == [entry]


async def test_an_unknown_event_is_none(store: Store) -> None:
    await submit(store, r.event("known"))
    assert await store.get_event("unknown") is None


async def test_each_submit_gets_a_larger_seq(store: Store) -> None:
    records = await submit_many(store, ["a", "b", "a", "c"])
    seqs = [record.seq for record in records]
    assert seqs == sorted(set(seqs))


async def test_the_same_request_again_returns_the_stored_record_and_writes_nothing(
    store: Store,
) -> None:
    first = await submit(store, r.event())
    later = attrs.evolve(r.event(), created_at=r.T0 + 42.5)  # a producer's retry
    record, created = await store.submit(later, r.accepted_audit(later))
    assert not created
    assert record == first
    assert await store.get_event(first.event.id) == first
    assert [entry.event_id for entry in await all_audit(store)] == [first.event.id]
    assert (await store.list_events()).items == [first]


async def test_a_retry_or_a_conflict_uses_up_no_seq(store: Store) -> None:
    """The next event's ``seq`` follows the last one stored, however often a taken id came."""
    first = await submit(store, r.event("ev-1"))
    for _ in range(3):
        await store.submit(r.event("ev-1"), r.accepted_audit(r.event("ev-1")))
    other = r.event("ev-1", manifests=("kind: Other\n",))
    with pytest.raises(EventConflict):
        await store.submit(other, r.accepted_audit(other))
    second = await submit(store, r.event("ev-2"))
    assert second.seq == first.seq + 1


@pytest.mark.parametrize(
    "change",
    [
        {"manifests": ("kind: Other\n",)},
        {"agent": "agent-b"},
        {"ttl": 601},
    ],
)
async def test_another_request_with_a_taken_id_is_a_conflict(
    store: Store, change: dict[str, object]
) -> None:
    first = await submit(store, r.event())
    other = r.event(**change)  # type: ignore[arg-type]
    with pytest.raises(EventConflict) as caught:
        await store.submit(other, r.accepted_audit(other))
    assert caught.value.event_id == first.event.id
    assert await store.get_event(first.event.id) == first
    assert len(await all_audit(store)) == 1
    assert await store.outbox("agent-b") == []


# --- listing ---------------------------------------------------------------------------------


async def test_list_events_is_newest_first_and_filters(store: Store) -> None:
    records = await submit_many(store, ["a", "b", "a", "b", "a"])
    ids = [record.event.id for record in records]
    await store.update_event("ev-2", r.update(EventState.ASSIGNED, r.T0 + 10))
    await store.update_event("ev-3", r.update(EventState.ASSIGNED, r.T0 + 10))

    async def listed(**filters: object) -> list[str]:
        page = await store.list_events(**filters)  # type: ignore[arg-type]
        assert page.cursor is None
        return [record.event.id for record in page.items]

    assert await listed() == ids[::-1]
    assert await listed(agent="a") == ["ev-4", "ev-2", "ev-0"]
    assert await listed(agent="b") == ["ev-3", "ev-1"]
    assert await listed(agent="nobody") == []
    assert await listed(state=EventState.ASSIGNED) == ["ev-3", "ev-2"]
    assert await listed(state=EventState.QUEUED) == ["ev-4", "ev-1", "ev-0"]
    assert await listed(state=EventState.COMPLETED) == []
    assert await listed(agent="a", state=EventState.QUEUED) == ["ev-4", "ev-0"]
    assert await listed(agent="b", state=EventState.ASSIGNED) == ["ev-3"]
    listed_records = (await store.list_events(agent="a", state=EventState.ASSIGNED)).items
    assert listed_records == [await store.get_event("ev-2")]


@pytest.mark.parametrize("limit", [1, 3, 5, 10, 11])
async def test_pages_cover_every_event_once(store: Store, limit: int) -> None:
    records = await submit_many(store, ["a", "b"] * 5)
    seen: list[EventRecord] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await store.list_events(limit=limit, cursor=cursor)
        pages += 1
        assert 1 <= len(page.items) <= limit
        seen += page.items
        if page.cursor is None:
            break
        assert len(page.items) == limit
        cursor = page.cursor
    assert seen == records[::-1]
    assert pages == -(-len(records) // limit)  # no empty page at the end


async def test_filtered_pages_cover_every_matching_event_once(store: Store) -> None:
    records = await submit_many(store, ["a", "b", "b", "a", "b", "a", "a", "b", "a"])
    for record in records[::3]:
        await store.update_event(record.event.id, r.update(EventState.ASSIGNED, r.T0 + 100))
    wanted = [
        record.event.id
        for record in records[::-1]
        if record.event.target_agent == "a" and records.index(record) % 3 != 0
    ]
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = await store.list_events(agent="a", state=EventState.QUEUED, limit=2, cursor=cursor)
        seen += [record.event.id for record in page.items]
        if page.cursor is None:
            break
        cursor = page.cursor
    assert seen == wanted


@pytest.mark.parametrize("cursor", ["abc", "-1", "0", "1.5", "", "٣"])
async def test_a_cursor_the_store_never_gave_is_refused(store: Store, cursor: str) -> None:
    await submit(store, r.event())
    with pytest.raises(InvalidCursor):
        await store.list_events(cursor=cursor)
    with pytest.raises(InvalidCursor):
        await store.list_audit(cursor=cursor)


# --- updates ---------------------------------------------------------------------------------


async def test_an_event_goes_its_whole_way_as_advance_says(store: Store) -> None:
    expected = await submit(store, r.event())
    for step in r.JOURNEY:
        following = advance(expected, step)
        assert following is not None
        expected = following
        assert await store.update_event("ev-1", step) == expected
        assert await store.get_event("ev-1") == expected
    assert expected.state is EventState.COMPLETED
    assert expected.resources == r.RESULTS
    assert len(expected.timeline) == 1 + len(r.JOURNEY)


async def test_a_terminal_event_is_final(store: Store) -> None:
    await submit(store, r.event())
    done = await store.update_event("ev-1", r.update(EventState.FAILED, r.T0 + 1, Phase.FAILED))
    assert done is not None
    for state in EventState:
        assert await store.update_event("ev-1", r.update(state, r.T0 + 2, message="x")) is None
    assert await store.get_event("ev-1") == done


async def test_states_only_move_forward_but_assigned_may_go_back_to_queued(store: Store) -> None:
    await submit(store, r.event())
    assigned = await store.update_event("ev-1", r.update(EventState.ASSIGNED, r.T0 + 1))
    assert assigned is not None
    requeued = await store.update_event("ev-1", r.update(EventState.QUEUED, r.T0 + 2, None, "gone"))
    assert requeued is not None
    assert requeued.state is EventState.QUEUED
    assert [entry.state for entry in requeued.timeline] == [
        EventState.QUEUED,
        EventState.ASSIGNED,
        EventState.QUEUED,
    ]
    assert [event.id for _, event in await store.outbox("agent-a")] == ["ev-1"]
    assert [rec.event.id for rec in (await store.list_events(state=EventState.QUEUED)).items] == [
        "ev-1"
    ]
    assert (await store.list_events(state=EventState.ASSIGNED)).items == []

    working = r.update(EventState.IN_PROGRESS, r.T0 + 3, Phase.APPLYING)
    progressed = await store.update_event("ev-1", working)
    assert progressed is not None
    for back in (EventState.ASSIGNED, EventState.QUEUED):
        assert await store.update_event("ev-1", r.update(back, r.T0 + 4)) is None
    assert await store.get_event("ev-1") == progressed


async def test_a_report_that_changes_nothing_adds_nothing(store: Store) -> None:
    await submit(store, r.event())
    applying = r.update(EventState.IN_PROGRESS, r.T0 + 1, Phase.APPLYING, "applying")
    first = await store.update_event("ev-1", applying)
    assert first is not None
    assert await store.update_event("ev-1", attrs.evolve(applying, at=r.T0 + 2)) is None
    assert await store.get_event("ev-1") == first
    # New results in the same phase: the record changes, the timeline does not grow.
    with_results = attrs.evolve(applying, at=r.T0 + 3, resources=r.RESULTS)
    second = await store.update_event("ev-1", with_results)
    assert second is not None
    assert second.resources == r.RESULTS
    assert second.timeline == first.timeline
    assert second.updated_at == r.T0 + 3
    assert await store.get_event("ev-1") == second


async def test_updating_an_unknown_event_gives_none(store: Store) -> None:
    await submit(store, r.event())
    assert await store.update_event("nope", r.update(EventState.ASSIGNED, r.T0)) is None
    assert await store.get_event("nope") is None


# --- outbox and expiry -----------------------------------------------------------------------


async def test_the_outbox_holds_the_agents_unfinished_events_oldest_first(store: Store) -> None:
    await submit_many(store, ["a", "b", "a", "a", "a", "a", "b"])
    await store.update_event("ev-2", r.update(EventState.COMPLETED, r.T0 + 10))
    await store.update_event("ev-3", r.update(EventState.IN_PROGRESS, r.T0 + 10, Phase.RECEIVED))
    await store.update_event("ev-4", r.update(EventState.EXPIRED, r.T0 + 10))
    await store.update_event("ev-5", r.update(EventState.ASSIGNED, r.T0 + 10))
    await store.update_event("ev-6", r.update(EventState.FAILED, r.T0 + 10))

    outbox = [event for _, event in await store.outbox("a")]
    assert [event.id for event in outbox] == ["ev-0", "ev-3", "ev-5"]
    assert outbox[0] == r.event("ev-0", "a", created_at=r.T0)
    assert [event.id for _, event in await store.outbox("a", limit=2)] == ["ev-0", "ev-3"]
    assert [event.id for _, event in await store.outbox("b")] == ["ev-1"]
    assert await store.outbox("nobody") == []
    seqs = [seq for seq, _ in await store.outbox("a")]
    assert seqs == sorted(seqs)
    after_first = await store.outbox("a", after=seqs[0])
    assert [event.id for _, event in after_first] == ["ev-3", "ev-5"]
    assert await store.outbox("a", after=seqs[-1]) == []


async def test_expiring_lists_unfinished_events_past_their_time(store: Store) -> None:
    for n, ttl in enumerate([10, 20, 30, 40, 25]):
        await submit(store, r.event(f"ev-{n}", ttl=ttl))
    await store.update_event("ev-0", r.update(EventState.COMPLETED, r.T0 + 5))
    await store.update_event("ev-4", r.update(EventState.FAILED, r.T0 + 5))
    await store.update_event("ev-2", r.update(EventState.IN_PROGRESS, r.T0 + 5, Phase.APPLYING))

    now = r.T0 + 30  # ev-2 expires exactly now: it counts
    assert sorted(await store.expiring(now)) == ["ev-1", "ev-2"]
    first = await store.expiring(now, limit=1)
    assert len(first) == 1
    assert first[0] in {"ev-1", "ev-2"}
    assert await store.expiring(r.T0 + 19.5) == []
    assert sorted(await store.expiring(r.T0 + 1000)) == ["ev-1", "ev-2", "ev-3"]

    await store.update_event("ev-1", r.update(EventState.EXPIRED, now))
    assert await store.expiring(now) == ["ev-2"]


# --- agents ----------------------------------------------------------------------------------


async def test_agents_are_kept_replaced_and_listed_by_id(store: Store) -> None:
    for agent_id in ["charlie", "alpha", "bravo"]:
        await store.put_agent(r.agent(agent_id))
    assert await store.get_agent("alpha") == r.agent("alpha")
    assert await store.get_agent("nobody") is None
    gone = r.agent("bravo", AgentStatus.DISCONNECTED)
    await store.put_agent(gone)
    assert await store.get_agent("bravo") == gone
    assert await store.list_agents() == [r.agent("alpha"), gone, r.agent("charlie")]


# --- audit -----------------------------------------------------------------------------------


async def test_audit_entries_get_growing_seqs_and_list_newest_first(store: Store) -> None:
    event = r.event()
    await submit(store, event)
    appended = []
    for n in range(6):
        entry = AuditEntry(at=r.T0 + n, action="agent.connected", actor="cp", agent_id=f"a{n}")
        stored = await store.audit(entry)
        assert r.unsealed(stored) == entry
        appended.append(stored)
    seqs = [entry.seq for entry in appended]
    assert seqs == sorted(set(seqs))

    everything = await all_audit(store)
    assert everything[:-1] == appended[::-1]
    submitted = everything[-1]
    assert r.unsealed(submitted) == r.accepted_audit(event)
    assert submitted.seq < seqs[0]

    paged: list[AuditEntry] = []
    cursor: str | None = None
    while True:
        page = await store.list_audit(limit=3, cursor=cursor)
        paged += page.items
        if page.cursor is None:
            break
        cursor = page.cursor
    assert paged == everything


# --- restart ---------------------------------------------------------------------------------


async def test_everything_survives_closing_and_opening_again(backend: Backend) -> None:
    async with backend.open() as store:
        records = await submit_many(store, ["a", "b", "a"])
        for step in r.JOURNEY[:3]:
            await store.update_event("ev-0", step)
        await store.update_event("ev-1", r.update(EventState.COMPLETED, r.T0 + 9))
        await store.put_agent(r.agent("a"))
        await store.audit(AuditEntry(at=r.T0, action="agent.connected", agent_id="a"))
        events_before = await store.list_events()
        audit_before = await all_audit(store)
        ev0 = await store.get_event("ev-0")

    async with backend.open() as store:
        assert await store.list_events() == events_before
        assert await store.get_event("ev-0") == ev0
        assert ev0 is not None
        assert ev0.state is EventState.IN_PROGRESS
        assert [event.id for _, event in await store.outbox("a")] == ["ev-0", "ev-2"]
        assert await store.outbox("b") == []
        assert await store.list_agents() == [r.agent("a")]
        assert await all_audit(store) == audit_before
        later = await submit(store, r.event("ev-later", "a"))
        assert later.seq > records[-1].seq
        entry = await store.audit(AuditEntry(at=r.T0, action="x"))
        assert entry.seq > audit_before[0].seq
        assert await store.update_event("ev-0", r.JOURNEY[3]) is not None


async def test_an_error_in_the_callers_block_comes_out_as_itself(backend: Backend) -> None:
    class Boom(Exception):
        pass

    async def use() -> None:
        async with backend.open() as store:
            await store.ping()
            raise Boom

    with pytest.raises(Boom):  # not wrapped in an ExceptionGroup by a driver's task group
        await use()


async def test_a_cancelled_block_closes_the_store_cleanly(backend: Backend) -> None:
    with trio.CancelScope() as scope:
        async with backend.open() as store:
            await submit(store, r.event())
            scope.cancel()
            await trio.sleep_forever()
    assert scope.cancelled_caught
    async with backend.open() as store:
        assert [record.event.id for record in (await store.list_events()).items] == ["ev-1"]


# --- concurrency -----------------------------------------------------------------------------


async def test_many_tasks_advancing_their_own_events_lose_nothing(store: Store) -> None:
    events = [r.event(f"ev-{n}", f"agent-{n % 5}") for n in range(50)]
    async with trio.open_nursery() as nursery:
        for event in events:
            nursery.start_soon(submit, store, event)

    async def walk(event_id: str) -> None:
        for step in r.JOURNEY:
            assert await store.update_event(event_id, step) is not None

    async with trio.open_nursery() as nursery:
        for event in events:
            nursery.start_soon(walk, event.id)

    page = await store.list_events(limit=100)
    assert len(page.items) == 50
    for record in page.items:
        expected = accepted(EventRecord(record.event, record.seq))
        for step in r.JOURNEY:
            following = advance(expected, step)
            assert following is not None
            expected = following
        assert record == expected
    for n in range(5):
        assert await store.outbox(f"agent-{n}") == []
    assert len({record.seq for record in page.items}) == 50


async def test_racing_updates_on_one_event_are_all_kept_in_one_order(store: Store) -> None:
    await submit(store, r.event())
    results: list[EventRecord | None] = []

    async def report(n: int) -> None:
        step = r.update(EventState.IN_PROGRESS, r.T0 + n, Phase.APPLYING, f"step {n}")
        results.append(await store.update_event("ev-1", step))

    async with trio.open_nursery() as nursery:
        for n in range(50):
            nursery.start_soon(report, n)

    final = await store.get_event("ev-1")
    assert final is not None
    applied = [result for result in results if result is not None]
    assert len(applied) == 50  # every message differs, so every report applies
    assert len(final.timeline) == 1 + len(applied)  # and none was lost
    assert {entry.message for entry in final.timeline[1:]} == {f"step {n}" for n in range(50)}
    for result in applied:  # each caller saw a state the final record went through
        assert final.timeline[: len(result.timeline)] == result.timeline
    assert final.message == final.timeline[-1].message


async def test_a_report_sent_again_is_not_applied_again(store: Store) -> None:
    """A control plane died after storing two reports and before acknowledging them: the agent
    sends both again to the next one. Neither moves the event back nor adds a line."""
    await submit(store, r.event())
    applying = r.update(EventState.IN_PROGRESS, r.T0 + 1, Phase.APPLYING, "applying 1 object")
    verifying = r.update(EventState.IN_PROGRESS, r.T0 + 2, Phase.VERIFYING, "verifying")
    for update in (applying, verifying):
        assert await store.update_event("ev-1", update) is not None
    assert await store.update_many([("ev-1", applying, None), ("ev-1", verifying, None)]) == [
        None,
        None,
    ]
    final = await store.get_event("ev-1")
    assert final is not None and final.phase is Phase.VERIFYING
    assert [entry.message for entry in final.timeline[1:]] == ["applying 1 object", "verifying"]
    # The same words at another time are another report, and apply.
    again = r.update(EventState.IN_PROGRESS, r.T0 + 3, Phase.APPLYING, "applying 1 object")
    moved = await store.update_event("ev-1", again)
    assert moved is not None and len(moved.timeline) == 4


async def test_racing_terminal_reports_let_exactly_one_win(store: Store) -> None:
    await submit(store, r.event())
    results: list[EventRecord | None] = []

    async def finish(n: int) -> None:
        state = EventState.COMPLETED if n % 2 else EventState.FAILED
        results.append(await store.update_event("ev-1", r.update(state, r.T0 + n)))

    async with trio.open_nursery() as nursery:
        for n in range(40):
            nursery.start_soon(finish, n)

    winners = [result for result in results if result is not None]
    assert len(winners) == 1
    assert await store.get_event("ev-1") == winners[0]
    assert await store.outbox("agent-a") == []
    assert await store.expiring(r.T0 + 10_000) == []


async def test_an_update_carries_its_audit_entry_only_when_it_applies(store: Store) -> None:
    await submit(store, r.event("ev-1"))
    done = AuditEntry(
        at=r.T0 + 5,
        action="event.completed",
        agent_id="agent-a",
        event_id="ev-1",
        detail="1 created",
    )
    record = await store.update_event(
        "ev-1", r.update(EventState.COMPLETED, r.T0 + 5, Phase.COMPLETED, "1 created"), audit=done
    )
    assert record is not None
    assert record.state is EventState.COMPLETED
    again = attrs.evolve(done, at=r.T0 + 6, action="event.failed")
    refused = await store.update_event(
        "ev-1", r.update(EventState.FAILED, r.T0 + 6, Phase.FAILED), audit=again
    )
    assert refused is None
    unknown = await store.update_event("ev-nope", r.update(EventState.ASSIGNED, r.T0), audit=again)
    assert unknown is None
    page = await store.list_audit(limit=10)
    assert [(e.action, e.event_id) for e in page.items] == [
        ("event.completed", "ev-1"),
        ("event.accepted", "ev-1"),
    ]
    assert page.items[0].seq > page.items[1].seq
    assert r.unsealed(page.items[0]) == done


async def test_a_batch_of_submits_keeps_each_answer_in_its_place(store: Store) -> None:
    first = r.event("ev-1")
    await submit(store, first)
    clash = attrs.evolve(r.event("ev-1"), target_agent="agent-z")
    fresh = [r.event(f"ev-{n}") for n in (2, 3)]
    results = await store.submit_many(
        [(e, r.accepted_audit(e)) for e in [fresh[0], first, clash, fresh[1]]]
    )
    assert len(results) == 4
    assert isinstance(results[0], tuple) and results[0][1] is True
    assert isinstance(results[1], tuple) and results[1][1] is False
    assert isinstance(results[2], EventConflict) and results[2].event_id == "ev-1"
    assert isinstance(results[3], tuple) and results[3][1] is True
    stored = await store.list_events(limit=10)
    assert [record.event.id for record in stored.items] == ["ev-3", "ev-2", "ev-1"]
    audit = await store.list_audit(limit=10)
    assert [entry.event_id for entry in audit.items] == ["ev-3", "ev-2", "ev-1"]


async def test_a_batch_of_updates_applies_in_order(store: Store) -> None:
    for n in (1, 2):
        await submit(store, r.event(f"ev-{n}"))
    done = AuditEntry(at=r.T0 + 3, action="event.completed", agent_id="agent-a", event_id="ev-2")
    results = await store.update_many(
        [
            ("ev-1", r.update(EventState.ASSIGNED, r.T0 + 1), None),
            ("ev-1", r.update(EventState.IN_PROGRESS, r.T0 + 2, Phase.RECEIVED), None),
            ("ev-nope", r.update(EventState.ASSIGNED, r.T0 + 2), None),
            ("ev-2", r.update(EventState.COMPLETED, r.T0 + 3, Phase.COMPLETED), done),
            ("ev-2", r.update(EventState.FAILED, r.T0 + 4, Phase.FAILED), done),
        ]
    )
    assert [None if x is None else x.state for x in results] == [
        EventState.ASSIGNED,
        EventState.IN_PROGRESS,
        None,
        EventState.COMPLETED,
        None,
    ]
    one = await store.get_event("ev-1")
    assert one is not None and one.phase is Phase.RECEIVED
    audit = await store.list_audit(limit=10)
    assert [entry.action for entry in audit.items].count("event.completed") == 1


async def test_what_another_writer_stored_is_read_not_what_was_remembered(
    backend: Backend,
) -> None:
    """A store remembers the records it decoded or wrote; another process on the same data (a
    second store here: a replica, or another process on the file) moves the event on, and each
    store reads, and builds on, what is stored. Whole batches too."""
    async with backend.open() as first, backend.open() as second:
        await first.submit(r.event(), r.accepted_audit(r.event()))
        assigned, received, validating, applying, verifying = r.JOURNEY[:5]
        await first.update_event("ev-1", assigned)
        assert await second.update_event("ev-1", received) is not None
        seen = await first.get_event("ev-1")
        assert seen is not None
        assert (seen.state, seen.phase) == (EventState.IN_PROGRESS, Phase.RECEIVED)
        (after,) = await first.update_many([("ev-1", validating, None)])
        assert after is not None
        assert [entry.phase for entry in after.timeline][-2:] == [Phase.RECEIVED, Phase.VALIDATING]
        await second.update_event("ev-1", applying)
        last, repeat = await first.update_many(
            [("ev-1", verifying, None), ("ev-1", attrs.evolve(verifying, at=r.T0 + 9), None)]
        )
        assert last is not None and last.phase is Phase.VERIFYING
        assert repeat is None  # the first of the batch changed what the second is read against
        assert await first.get_event("ev-1") == await second.get_event("ev-1")
        phases = [entry.phase for entry in last.timeline if entry.phase is not None]
        assert phases[-4:] == [Phase.RECEIVED, Phase.VALIDATING, Phase.APPLYING, Phase.VERIFYING]
