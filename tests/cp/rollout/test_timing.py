"""What the engine does with time and with other replicas: a pause between waves, children of
agents that never come expire (and count as failures), agents that registered with another
control plane on the same store join a standing rollout by the periodic sweep."""

from __future__ import annotations

import time
from pathlib import Path

import trio

from tests.cp.rollout.plane import everyone, spec, start_plane
from transporter.protocol.model import AgentInfo, AgentRecord, AgentStatus, EventState
from transporter.protocol.rollout import RolloutState, Strategy, Wave


async def test_a_pause_between_waves(nursery: trio.Nursery, tmp_path: Path) -> None:
    # no periodic look before the test's end: the engine wakes when the pause is over
    plane = await start_plane(nursery, tmp_path, reconcile_interval=60)
    await plane.agent("a1", {"ring": "canary"})
    await plane.agent("a2")
    await plane.create(strategy=Strategy(waves=(Wave("ring=canary"), Wave("", pause=1))))
    record = await plane.until("r1", lambda r: r.state is RolloutState.PAUSED)
    assert record.resume_at is not None
    assert record.message.startswith("wave 2 starts at ")
    assert plane.script.agents_ran() == ["a1"]
    record = await plane.final("r1")
    assert record.state is RolloutState.COMPLETED
    started = [e.at for e in record.timeline if e.what == "wave_started"]
    assert started[1] >= record.timeline[-1].at - 60 and started[1] - started[0] >= 1


async def test_children_of_agents_that_never_come_expire_as_failures(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    plane = await start_plane(nursery, tmp_path)
    await plane.agent("here")
    await plane.create(agents=("here", "never"), ttl=1, strategy=Strategy(max_failures=1))
    record = await plane.final("r1")
    assert record.state is RolloutState.FAILED
    assert record.message == "1 of 2 clusters did not complete: 1 expired"
    children = await plane.rollouts.children(record)
    assert [c.state if c else None for c in children] == [
        EventState.COMPLETED,
        EventState.EXPIRED,
    ]


async def test_agents_of_another_replica_join_a_standing_rollout(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    plane = await start_plane(nursery, tmp_path, sweep_interval=0.5)
    await plane.create(selector="env=prod", standing=True, allow_empty=True)
    await plane.until("r1", lambda r: r.state is RolloutState.STANDING)
    # registered with another control plane: only the store knows of it here
    info = AgentInfo("elsewhere", labels={"env": "prod"})
    await plane.store.put_agent(AgentRecord(info, AgentStatus.CONNECTED, time.time()))
    record = await plane.until("r1", lambda r: [c.state for c in r.clusters] == ["queued"])
    assert record.clusters[0].agent_id == "elsewhere"
    child = await plane.store.get_event("r1_elsewhere")
    assert child is not None and child.event.ttl == 600  # a late agent gets the whole TTL
    # closing a rollout that is not standing changes nothing
    await plane.rollouts.create(spec("r2", agents=("x",)), may_target=everyone)
    closed = await plane.rollouts.close("r2", actor="bob", may_target=everyone)
    assert not closed.closed and closed.state is RolloutState.RUNNING
