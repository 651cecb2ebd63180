"""A thousand clusters cost the store a few calls, not a thousand: children's progress read in
one call (never their payloads), submitted in batches, the record saved once per step; and
cancelled together."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import trio

from tests.cp.rollout.plane import everyone, spec, start_plane
from transporter.protocol.rollout import RolloutState


class Counting:
    """The real store, counting the calls made to it."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._store, name)
        if not callable(found):
            return found

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return found(*args, **kwargs)

        return counted


async def test_a_thousand_clusters_in_a_few_store_calls(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    plane = await start_plane(nursery, tmp_path)
    counting = Counting(plane.store)
    plane.rollouts.mover.store = counting
    agents = tuple(f"agent-{n:04d}" for n in range(1000))
    with trio.fail_after(60):
        await plane.rollouts.create(spec(agents=agents), may_target=everyone)
        record = await plane.until("r1", lambda r: all(c.state == "queued" for c in r.clusters))
    assert len(record.clusters) == 1000
    steps = counting.calls["event_progress"]
    assert steps <= 3, counting.calls
    assert counting.calls["save_rollout"] <= steps
    # a step never reads a child's payload (get_events): only what event_progress gives
    assert counting.calls["get_event"] == counting.calls["get_events"] == 0
    counting.calls.clear()
    with trio.fail_after(60):
        _, cancelled, running = await plane.rollouts.cancel("r1", actor="bob", may_target=everyone)
    assert (cancelled, running) == (1000, 0)
    record = await plane.final("r1")
    assert record.state is RolloutState.CANCELLED
    assert counting.calls["event_progress"] <= 4, counting.calls
    assert counting.calls["get_events"] == 0
    children = await plane.rollouts.children(record)
    assert {child.state.value for child in children if child} == {"cancelled"}


async def test_an_idle_look_reads_no_record_while_its_children_stand_still(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    plane = await start_plane(nursery, tmp_path, reconcile_interval=3600)  # looks: ours only
    await plane.rollouts.create(spec(agents=("offline", "later")), may_target=everyone)
    await plane.until("r1", lambda r: [c.state for c in r.clusters] == ["queued", "queued"])
    # clusters by agent id: "later", then "offline"
    mover = plane.rollouts.mover
    counting = Counting(plane.store)
    mover.store = counting
    await mover.advance("r1", idle=True)  # reads the record: nothing to change, remembered
    assert counting.calls["get_rollout"] == 1
    for _ in range(3):
        record = await mover.advance("r1", idle=True)
        assert record is not None and record.clusters[1].state == "queued"
    assert counting.calls["get_rollout"] == 1 and counting.calls["event_progress"] == 4
    await plane.rollouts.cancel_event("r1_offline", actor="bob")  # a child changed
    record = await mover.advance("r1", idle=True)
    assert counting.calls["get_rollout"] == 2
    assert record is not None and record.clusters[1].state == "cancelled"
    record = await plane.final("r1")  # past max_failures: the other child is cancelled
    assert [c.state for c in record.clusters] == ["cancelled", "cancelled"]
