"""The heartbeat budget (``--heartbeat-budget``): each agent is told the interval at which the
whole fleet sends the budget's heartbeats a second, never below the least; the fleet is the
agents the store knows, or those connected if more; and each agent's health is judged by its
own interval (a real control plane, raw agents)."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import attrs
import trio

from tests.bed.clients import raw_agent
from tests.bed.harness import FAST_CHANNEL, ControlPlane
from tests.bed.logwatch import LogWatch

LEAST = 0.5
BUDGET = 2.0
"""Two heartbeats a second: a fleet of 3 beats every 1.5 s."""
CHANNEL = attrs.evolve(
    FAST_CHANNEL, heartbeat_interval=LEAST, heartbeat_budget=BUDGET, dead_heartbeats=20
)


async def test_each_agent_is_told_the_interval_its_fleet_can_afford(
    nursery: trio.Nursery, tmp_path: Path, logs: LogWatch
) -> None:
    cp = ControlPlane(nursery, tmp_path / "cp", channel=CHANNEL)
    await cp.start()
    told: dict[str, tuple[float, float]] = {}
    registered: dict[str, float] = {}
    async with AsyncExitStack() as stack:
        agents = []
        for n, protocol in ((1, 3), (2, 4), (3, 4)):  # the fleet grows as they come
            agent = await stack.enter_async_context(raw_agent(cp.agent_url))
            welcome = await agent.register(f"a{n}", protocol=protocol)
            registered[f"a{n}"] = trio.current_time()
            told[f"a{n}"] = (welcome["heartbeat_interval"], welcome["dead_after"])
            agents.append(agent)
        assert told == {"a1": (0.5, 10.0), "a2": (1.0, 20.0), "a3": (1.5, 30.0)}
        # a2, welcomed when the fleet was smaller, is paced to the fleet's interval; a1 speaks
        # protocol 3, which has no pace: it keeps its own.
        with trio.fail_after(10):
            pace = await agents[1].receive()
        assert pace == {"type": "pace", "heartbeat_interval": 1.5, "dead_after": 30.0}
        # All three say nothing: each is unhealthy after two of its own intervals.
        await logs.wait_for("agent a1: nothing heard")
        assert not logs.matching("agent a3: nothing heard")  # 1 s: not 2 of its intervals
        await logs.wait_for("agent a3: nothing heard")
        assert trio.current_time() - registered["a3"] >= 2 * 1.5
    # Restarted, the control plane knows a fleet of 3 from its store: the first one back is
    # told the fleet's interval at once.
    await cp.stop()
    await cp.start()
    async with raw_agent(cp.agent_url) as agent:
        welcome = await agent.register("a1", protocol=4)
    assert (welcome["heartbeat_interval"], welcome["dead_after"]) == (1.5, 30.0)
