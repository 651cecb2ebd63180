"""Plans as rollouts: each cluster plans (action ``plan``); applying the plan is a rollout over
the clusters whose plan completed, each expecting what its plan saw."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import trio

from tests.cp.rollout.plane import Plane, Script, everyone, spec, start_plane
from transporter.cp.rollout.errors import (
    NoMatch,
    NotAPlan,
    NotCovered,
    PlanExpired,
    PlanNotReady,
)
from transporter.protocol.model import Action, ResourceResult, ResourceStatus
from transporter.protocol.rollout import RolloutKind, RolloutRecord, RolloutState, Strategy
from transporter.protocol.rollout_request import PlanApply
from transporter.store.base import RolloutConflict


def result(name: str, status: ResourceStatus, fingerprint: str) -> ResourceResult:
    return ResourceResult("v1", "ConfigMap", name, "default", status, fingerprint=fingerprint)


class Clock:
    """Real time, moved on by ``offset``."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


async def apply(
    plane: Plane, plan_id: str, rollout_id: str | None = None
) -> tuple[RolloutRecord, bool]:
    asked = PlanApply(rollout_id, Strategy(), wait_ready=True, ready_timeout=30, ttl=600)
    return await plane.rollouts.apply_plan(plan_id, asked, actor="bob", may_target=everyone)


async def test_a_plan_then_its_apply(nursery: trio.Nursery, tmp_path: Path) -> None:
    script = Script(fail={"p3"}, hold={"p2"})
    script.results = {
        "p1": (
            result("a", ResourceStatus.WOULD_CHANGE, "f-a"),
            result("b", ResourceStatus.WOULD_CREATE, "absent"),
            result("c", ResourceStatus.REFUSED, "f-c"),
        ),
        "p2": (result("a", ResourceStatus.UNCHANGED, "f-a2"),),
    }
    clock = Clock()
    plane = await start_plane(nursery, tmp_path, script=script, clock=clock)
    for agent in ("p1", "p2", "p3"):
        await plane.agent(agent, {"env": "prod"})
    plan, _ = await plane.rollouts.create(
        spec("plan1", selector="env=prod", kind=RolloutKind.PLAN, ttl=600), may_target=everyone
    )
    # a plan runs everywhere at once, and none is left out because another failed
    assert plan.spec.strategy.max_parallel == 0 and plan.spec.strategy.max_failures >= 3
    await plane.until("plan1", lambda r: [c.state for c in r.clusters][2] == "failed")
    with pytest.raises(PlanNotReady):
        await apply(plane, "plan1")
    script.release.set()
    plan = await plane.final("plan1")
    assert plan.state is RolloutState.FAILED  # p3's plan failed
    assert {e.payload.action for e in script.ran} == {Action.PLAN}
    await plane.rollouts.create(spec("r1", agents=("p1",)), may_target=everyone)
    with pytest.raises(NotAPlan):
        await apply(plane, "r1")

    script.ran.clear()
    applied, created = await apply(plane, "plan1", "apply1")
    assert created and applied.spec.kind is RolloutKind.APPLY
    assert applied.spec.plan_id == "plan1"
    assert [c.agent_id for c in applied.clusters] == ["p1", "p2"]  # p3's plan did not complete
    again, created = await apply(plane, "plan1", "apply1")
    assert not created and again.spec.id == "apply1"
    applied = await plane.final("apply1")
    assert applied.state is RolloutState.COMPLETED
    sent = {e.target_agent: e.payload for e in script.ran}
    assert sent["p1"].action is Action.APPLY
    assert sent["p1"].expect == {"/ConfigMap/default/a": "f-a", "/ConfigMap/default/b": "absent"}
    assert sent["p2"].expect == {"/ConfigMap/default/a": "f-a2"}
    assert sent["p1"].wait_ready and sent["p1"].ready_timeout == 30

    clock.offset = 601
    with pytest.raises(PlanExpired):
        await apply(plane, "plan1", "apply2")


async def test_a_plan_that_completed_nowhere_applies_nothing(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    plane = await start_plane(nursery, tmp_path, script=Script(fail={"p1"}))
    await plane.agent("p1")
    await plane.rollouts.create(
        spec("plan1", agents=("p1",), kind=RolloutKind.PLAN), may_target=everyone
    )
    await plane.final("plan1")
    with pytest.raises(NoMatch):
        await apply(plane, "plan1")


async def test_a_repeated_apply_is_answered_first_and_reach_before_the_plans_state(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    clock = Clock()
    plane = await start_plane(nursery, tmp_path, script=Script(hold={"p2"}), clock=clock)
    await plane.agent("p1")
    await plane.agent("p2")
    plane.script.results = {"p1": (result("a", ResourceStatus.WOULD_CREATE, "absent"),)}
    await plane.rollouts.create(
        spec("plan1", agents=("p1",), kind=RolloutKind.PLAN, ttl=600), may_target=everyone
    )
    await plane.rollouts.create(
        spec("plan2", agents=("p2",), kind=RolloutKind.PLAN, ttl=600), may_target=everyone
    )
    await plane.final("plan1")
    await apply(plane, "plan1", "apply1")
    clock.offset = 601  # the plan expired: a repeat of its apply is still answered as one
    again, created = await apply(plane, "plan1", "apply1")
    assert not created and again.spec.id == "apply1"
    other = PlanApply("apply1", Strategy(max_parallel=1), True, ready_timeout=30, ttl=600)
    with pytest.raises(RolloutConflict):  # another request under that id
        await plane.rollouts.apply_plan("plan1", other, actor="bob", may_target=everyone)
    with pytest.raises(PlanExpired):
        await apply(plane, "plan1", "apply2")
    # a caller who does not reach the plan's clusters learns nothing of its state
    for plan_id in ("plan1", "plan2"):  # expired; not finished
        with pytest.raises(NotCovered):
            await plane.rollouts.apply_plan(
                plan_id, PlanApply(ttl=600), actor="eve", may_target=lambda agent: False
            )
