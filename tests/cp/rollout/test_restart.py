"""A control plane stopped in the middle of a rollout and started again on the same store
resumes it from the store: no wave starts early, no cluster is lost or started twice."""

from __future__ import annotations

from pathlib import Path

import trio

from tests.cp.rollout.plane import Script, start_plane
from transporter.protocol.model import EventState
from transporter.protocol.rollout import RolloutState, Strategy, Wave


async def test_a_restart_resumes_the_rollout_where_the_store_says(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    script = Script(hold={"a1"})
    plane = await start_plane(nursery, tmp_path, script=script)
    for n in (1, 2, 3):
        await plane.agent(f"a{n}", {"wave": str(n)})
    waves = (Wave("wave=1"), Wave("wave=2"), Wave("wave=3"))
    await plane.create(strategy=Strategy(waves=waves))
    await plane.until("r1", lambda r: r.clusters[0].state == "in_progress")
    await plane.stop()

    plane = await start_plane(nursery, tmp_path, script=script, port=plane.port)
    record = await plane.rollouts.mover.advance("r1")  # a step of the new engine, at once
    assert record is not None and record.state is RolloutState.RUNNING
    assert [c.state for c in record.clusters] == ["in_progress", "pending", "pending"]
    assert await plane.store.get_event("r1_a2") is None  # wave 1 waits for a1
    script.release.set()
    record = await plane.final("r1")
    assert record.state is RolloutState.COMPLETED
    assert [e.wave for e in record.timeline if e.what == "wave_started"] == [0, 1, 2]
    assert sorted(set(script.agents_ran())) == ["a1", "a2", "a3"]
    assert script.agents_ran().count("a2") == script.agents_ran().count("a3") == 1
    children = await plane.rollouts.children(record)
    assert [c.state if c else None for c in children] == [EventState.COMPLETED] * 3
