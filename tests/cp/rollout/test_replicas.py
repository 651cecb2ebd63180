"""Two control planes on one Redis store move the same rollouts: their steps never undo each
other nor pass the strategy's bounds, and an agent that registers with either joins a standing
rollout."""

from __future__ import annotations

from pathlib import Path

import trio

from tests.bed.redis import RedisServer
from tests.cp.rollout.plane import Script, everyone, spec, start_plane
from transporter.config.store_spec import StoreSpec
from transporter.protocol.rollout import RolloutState, Strategy


async def test_two_replicas_share_a_rollout(
    nursery: trio.Nursery, tmp_path: Path, redis_server: RedisServer
) -> None:
    store = StoreSpec.parse(redis_server.url)
    script = Script()
    one = await start_plane(nursery, tmp_path / "one", script=script, store=store)
    two = await start_plane(nursery, tmp_path / "two", script=script, store=store)
    for n in range(6):
        await (one if n % 2 else two).agent(f"a{n}", {"env": "prod"})
    await one.rollouts.create(
        spec(selector="env=prod", strategy=Strategy(max_parallel=2)), may_target=everyone
    )
    record = await one.final("r1", also=two)  # moved by both: each steps on its own agents' reports
    assert record.state is RolloutState.COMPLETED
    assert sorted(script.agents_ran()) == [f"a{n}" for n in range(6)]
    assert script.most <= 2

    await two.rollouts.create(
        spec("r2", selector="env=late", standing=True, allow_empty=True), may_target=everyone
    )
    await one.until("r2", lambda r: r.state is RolloutState.STANDING, also=two)
    await one.agent("b1", {"env": "late"})
    await two.agent("b2", {"env": "late"})
    record = await two.until(
        "r2", lambda r: [c.state for c in r.clusters] == ["completed", "completed"], also=one
    )
    assert [c.agent_id for c in record.clusters] == ["b1", "b2"]
    await one.rollouts.close("r2", actor="bob", may_target=everyone)
    assert (await one.final("r2", also=two)).state is RolloutState.COMPLETED
