"""``count_unfinished``: the events of each state that is not final, on either store (what the
control plane's ``transporter_events_unfinished`` gauge shows)."""

from __future__ import annotations

from tests.bed import records as r
from transporter.protocol.model import EventState, Phase
from transporter.store import Store


async def test_an_empty_store_has_nothing_unfinished(store: Store) -> None:
    counts = await store.count_unfinished()
    assert all(n == 0 for n in counts.values()), counts


async def test_events_are_counted_in_the_state_they_are_in_now(store: Store) -> None:
    for n in range(5):
        ev = r.event(f"ev-{n}", f"agent-{n % 2}", created_at=r.T0 + n)
        await store.submit(ev, r.accepted_audit(ev))
    await store.update_event("ev-0", r.update(EventState.ASSIGNED, r.T0 + 10))
    await store.update_event("ev-1", r.update(EventState.ASSIGNED, r.T0 + 10))
    await store.update_event("ev-1", r.update(EventState.IN_PROGRESS, r.T0 + 11, Phase.APPLYING))
    await store.update_event("ev-2", r.update(EventState.COMPLETED, r.T0 + 12, Phase.COMPLETED))
    await store.update_event("ev-3", r.update(EventState.EXPIRED, r.T0 + 13))
    counts = await store.count_unfinished()
    assert {state: counts.get(state, 0) for state in EventState if not state.terminal} == {
        EventState.QUEUED: 1,
        EventState.ASSIGNED: 1,
        EventState.IN_PROGRESS: 1,
    }
    assert not any(state.terminal for state in counts)
