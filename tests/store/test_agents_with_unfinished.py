"""agents_with_unfinished, in every store: which of many agents have anything unfinished, in one
read (a reconnect storm's first looks at the outboxes, cp/first_looks.py Looks)."""

from __future__ import annotations

from tests.bed import records as r
from transporter.protocol.model import EventState, Phase
from transporter.store import Store
from transporter.store.base import MAX_LIMIT


async def submit(store: Store, event_id: str, agent: str) -> None:
    ev = r.event(event_id, agent)
    await store.submit(ev, r.accepted_audit(ev))


async def test_only_agents_with_an_unfinished_event_are_named(store: Store) -> None:
    assert await store.agents_with_unfinished([]) == set()
    assert await store.agents_with_unfinished(["nobody"]) == set()
    await submit(store, "ev-q", "queued")
    await submit(store, "ev-a", "assigned")
    await submit(store, "ev-i", "in-progress")
    await submit(store, "ev-c", "completed")
    await submit(store, "ev-x", "expired")
    await submit(store, "ev-m1", "mixed")
    await submit(store, "ev-m2", "mixed")
    await store.update_event("ev-a", r.update(EventState.ASSIGNED, r.T0 + 1))
    await store.update_event("ev-i", r.update(EventState.ASSIGNED, r.T0 + 1))
    await store.update_event("ev-i", r.update(EventState.IN_PROGRESS, r.T0 + 2, Phase.APPLYING))
    await store.update_event("ev-c", r.update(EventState.COMPLETED, r.T0 + 1, Phase.COMPLETED))
    await store.update_event("ev-x", r.update(EventState.EXPIRED, r.T0 + 1))
    await store.update_event("ev-m1", r.update(EventState.COMPLETED, r.T0 + 1, Phase.COMPLETED))
    asked = ["queued", "assigned", "in-progress", "completed", "expired", "mixed", "nobody"]
    assert await store.agents_with_unfinished(asked) == {
        "queued",
        "assigned",
        "in-progress",
        "mixed",
    }
    assert await store.agents_with_unfinished(["mixed", "mixed", "completed"]) == {"mixed"}
    await store.update_event("ev-m2", r.update(EventState.CANCELLED, r.T0 + 2))
    assert await store.agents_with_unfinished(asked) == {"queued", "assigned", "in-progress"}


async def test_as_many_agents_as_a_call_may_ask_about(store: Store) -> None:
    agents = [f"agent-{n:04d}" for n in range(MAX_LIMIT)]
    for n in range(0, MAX_LIMIT, 97):
        await submit(store, f"ev-{n}", agents[n])
    assert await store.agents_with_unfinished(agents) == set(agents[::97])
