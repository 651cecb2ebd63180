"""The rollout engine against the real store, intake, progress writer and delivery, with agents
that speak the real channel: rollouts go out and end as their clusters end, within their
strategy; cancel, approval, standing rollouts; refusals."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest
import trio

from tests.cp.rollout.fleet import MANIFEST
from tests.cp.rollout.plane import Script, everyone, spec, start_plane
from transporter.agent.session import agent_info
from transporter.cp.rollout.errors import (
    NoMatch,
    NotCancellable,
    NotCovered,
    NothingToApprove,
    UnknownEvent,
    UnknownRollout,
)
from transporter.protocol.model import AuditEntry, Event, EventState, K8sPayload
from transporter.protocol.rollout import RolloutState, Strategy, Wave
from transporter.security.tokens import Role, new_token
from transporter.store.base import RolloutConflict


async def test_a_rollout_reaches_every_matching_agent_and_completes(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    plane = await start_plane(nursery, tmp_path)
    for agent, env in (("a1", "prod"), ("a2", "prod"), ("a3", "dev")):
        await plane.agent(agent, {"env": env})
    record = await plane.create(selector="env=prod")
    assert [c.agent_id for c in record.clusters] == ["a1", "a2"]
    record = await plane.final("r1")
    assert record.state is RolloutState.COMPLETED
    assert record.message == "2 of 2 clusters completed"
    assert sorted(plane.script.agents_ran()) == ["a1", "a2"]
    children = await plane.rollouts.children(record)
    assert [(c.event.id, c.state, c.event.rollout_id) for c in children if c] == [
        ("r1_a1", EventState.COMPLETED, "r1"),
        ("r1_a2", EventState.COMPLETED, "r1"),
    ]
    assert all(child and child.event.signature for child in children)
    actions = [e.action for e in (await plane.store.list_audit(limit=100)).items]
    for action in ("rollout.accepted", "rollout.wave_started", "rollout.completed"):
        assert actions.count(action) == 1, action
    assert actions.count("event.accepted") == 2
    # the same request again: the stored rollout, nothing new; another under its id: refused
    again, created = await plane.rollouts.create(spec(selector="env=prod"), may_target=everyone)
    assert not created and again.spec.id == "r1" and again.state is RolloutState.COMPLETED
    with pytest.raises(RolloutConflict):
        await plane.rollouts.create(spec(selector="env=dev"), may_target=everyone)


async def test_refusals_store_nothing(nursery: trio.Nursery, tmp_path: Path) -> None:
    plane = await start_plane(nursery, tmp_path)
    await plane.agent("team-a-1", {"env": "prod"})
    await plane.agent("team-b-1", {"env": "prod"})
    with pytest.raises(NotCovered) as refused:
        await plane.rollouts.create(
            spec(selector="env=prod"), may_target=lambda agent: agent.startswith("team-a-")
        )
    assert refused.value.agents == ["team-b-1"]
    with pytest.raises(NoMatch):
        await plane.rollouts.create(spec(selector="env=none"), may_target=everyone)
    assert await plane.rollouts.get("r1") is None
    empty, _ = await plane.rollouts.create(
        spec(selector="env=none", allow_empty=True), may_target=everyone
    )
    assert (await plane.final("r1")).state is RolloutState.COMPLETED
    assert empty.clusters == ()
    with pytest.raises(UnknownRollout):
        await plane.rollouts.cancel("nope", actor="bob", may_target=everyone)


async def test_max_parallel_and_waves_keep_their_bounds(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    plane = await start_plane(nursery, tmp_path)
    for n in range(1, 6):
        await plane.agent(f"a{n}", {"ring": "canary" if n == 5 else "main"})
    strategy = Strategy(max_parallel=2, waves=(Wave("ring=canary"),))
    await plane.create(strategy=strategy)
    record = await plane.final("r1")
    assert record.state is RolloutState.COMPLETED
    ran = plane.script.agents_ran()
    assert ran[0] == "a5"  # the canary wave first, alone
    assert sorted(ran[1:]) == ["a1", "a2", "a3", "a4"]
    assert plane.script.most <= 2
    waves = [(e.what, e.wave) for e in record.timeline if e.what == "wave_started"]
    assert waves == [("wave_started", 0), ("wave_started", 1)]


async def test_past_max_failures_the_rest_is_cancelled_and_never_runs(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    script = Script(fail={"a1"}, hold={"a2"})
    plane = await start_plane(nursery, tmp_path, script=script)
    for n in range(1, 5):
        await plane.agent(f"a{n}")
    await plane.create(strategy=Strategy(max_parallel=2, max_failures=0))
    record = await plane.until("r1", lambda r: r.clusters[3].state == "cancelled")
    assert record.state is RolloutState.RUNNING  # a2 was sent: it finishes
    assert record.message == "1 cluster failed, more than max_failures 0; 1 finishing"
    script.release.set()
    record = await plane.final("r1")
    assert record.state is RolloutState.FAILED
    assert record.message == (
        "1 cluster failed, more than max_failures 0: 2 clusters not started or cancelled"
    )
    assert {c.agent_id: c.state for c in record.clusters} == {
        "a1": "failed",
        "a2": "completed",
        "a3": "cancelled",
        "a4": "cancelled",
    }
    assert record.clusters[2].message == ("not started: 1 cluster failed, more than max_failures 0")
    assert sorted(script.agents_ran()) == ["a1", "a2"]
    assert [child is None for child in await plane.rollouts.children(record)] == [
        False,
        False,
        True,
        True,
    ]


async def test_cancel_cancels_what_is_queued_and_lets_the_running_finish(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    script = Script(hold={"a1"})
    plane = await start_plane(nursery, tmp_path, script=script)
    await plane.agent("a1")
    # a2 never registered: a listed agent is a target all the same, its child queues
    await plane.create(agents=("a1", "a2", "a3"), strategy=Strategy(max_parallel=2))
    await plane.until(
        "r1", lambda r: [c.state for c in r.clusters][:2] == ["in_progress", "queued"]
    )
    record, cancelled, running = await plane.rollouts.cancel("r1", actor="bob", may_target=everyone)
    assert (cancelled, running) == (2, 1)  # a2's queued child and a3 never started; a1 runs
    assert record.state is RolloutState.RUNNING and record.cancel_requested
    child = (await plane.rollouts.children(record))[1]
    assert child is not None and child.state is EventState.CANCELLED
    with pytest.raises(NothingToApprove):
        await plane.rollouts.approve("r1", None, actor="bob", may_target=everyone)
    script.release.set()
    record = await plane.final("r1")
    assert record.state is RolloutState.CANCELLED and record.message == "cancelled by bob"
    assert [c.state for c in record.clusters] == ["completed", "cancelled", "cancelled"]
    again = await plane.rollouts.cancel("r1", actor="bob", may_target=everyone)
    assert again[1:] == (0, 0)
    actions = [e.action for e in (await plane.store.list_audit(limit=100)).items]
    assert actions.count("rollout.cancelled") == 1
    assert actions.count("event.cancelled") == 1


async def test_a_wave_that_needs_approval_waits_for_it(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    plane = await start_plane(nursery, tmp_path)
    await plane.agent("a1", {"ring": "canary"})
    await plane.agent("a2")
    strategy = Strategy(waves=(Wave("ring=canary"), Wave("", approval=True)))
    await plane.create(strategy=strategy)
    record = await plane.until("r1", lambda r: r.state is RolloutState.AWAITING_APPROVAL)
    assert record.message == "wave 2 awaits approval"
    assert plane.script.agents_ran() == ["a1"]
    with pytest.raises(NothingToApprove):
        await plane.rollouts.approve("r1", 2, actor="bob", may_target=everyone)
    with pytest.raises(NotCovered):
        await plane.rollouts.approve("r1", 1, actor="eve", may_target=lambda a: a == "a1")
    await plane.rollouts.approve("r1", 1, actor="bob", may_target=everyone)
    record = await plane.final("r1")
    assert record.state is RolloutState.COMPLETED
    assert plane.script.agents_ran() == ["a1", "a2"]
    assert [e.what for e in record.timeline] == [
        "accepted",
        "wave_started",
        "awaiting_approval",
        "approved",
        "wave_started",
        "completed",
    ]


async def test_a_standing_rollout_takes_agents_that_come_later_until_closed(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    plane = await start_plane(nursery, tmp_path)
    await plane.agent("team-a-1", {"env": "prod"})
    await plane.create(selector="env=prod", standing=True, scope=("team-a-*",))
    await plane.until("r1", lambda r: r.state is RolloutState.STANDING)
    await plane.agent("team-b-1", {"env": "prod"})  # out of the submitter's reach
    await plane.agent("team-a-2", {"env": "dev"})  # not selected
    await plane.agent("team-a-3", {"env": "prod"})
    record = await plane.until(
        "r1", lambda r: len(r.clusters) == 2 and r.state is RolloutState.STANDING
    )
    assert [c.agent_id for c in record.clusters] == ["team-a-1", "team-a-3"]
    assert sorted(plane.script.agents_ran()) == ["team-a-1", "team-a-3"]
    record = await plane.rollouts.close("r1", actor="bob", may_target=everyone)
    record = await plane.final("r1")
    assert record.state is RolloutState.COMPLETED and record.closed
    actions = [e.action for e in (await plane.store.list_audit(limit=200)).items]
    assert actions.count("rollout.agent_added") == 1
    assert actions.count("rollout.closed") == 1


async def test_cancelling_one_queued_event(nursery: trio.Nursery, tmp_path: Path) -> None:
    plane = await start_plane(nursery, tmp_path)
    await plane.create(agents=("offline",), ttl=600)
    record = await plane.until("r1", lambda r: r.clusters[0].state == "queued")
    cancelled = await plane.rollouts.cancel_event("r1_offline", actor="bob")
    assert cancelled.state is EventState.CANCELLED and cancelled.message == "cancelled by bob"
    with pytest.raises(NotCancellable) as refused:
        await plane.rollouts.cancel_event("r1_offline", actor="bob")
    assert refused.value.state is EventState.CANCELLED
    with pytest.raises(UnknownEvent):
        await plane.rollouts.cancel_event("nope", actor="bob")
    record = await plane.final("r1")  # its only child was cancelled: the rollout failed
    assert record.state is RolloutState.FAILED
    assert (
        record.message
        == "1 cluster failed, more than max_failures 0: 1 cluster not started or cancelled"
    )
    audits = (await plane.store.list_audit(limit=100)).items
    entry = next(e for e in audits if e.action == "event.cancelled")
    assert (entry.actor, entry.event_id, entry.agent_id) == ("bob", "r1_offline", "offline")
    # the agent comes: it is never sent the cancelled event
    await plane.agent("offline")
    assert plane.script.agents_ran() == []


async def test_a_standing_rollout_without_clusters_is_not_a_scoped_callers(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    plane = await start_plane(nursery, tmp_path)
    team_a, team_b = ("team-a-*",), ("team-b-*",)

    def reaches(scope: tuple[str, ...]) -> Callable[[str], bool]:
        return lambda agent: any(agent.startswith(p.rstrip("*")) for p in scope)

    await plane.create(selector="env=prod", standing=True, allow_empty=True, scope=team_a)
    await plane.create(rollout_id="r2", selector="env=prod", standing=True, allow_empty=True)
    for rollout_id in ("r1", "r2"):
        record = await plane.until(rollout_id, lambda r: r.state is RolloutState.STANDING)
        assert record.clusters == ()
    rollouts = plane.rollouts
    # team b reaches every cluster of r1 (there is none), but not what r1 may still take
    with pytest.raises(NotCovered):
        await rollouts.close("r1", actor="eve", may_target=reaches(team_b), scope=team_b)
    with pytest.raises(NotCovered):
        await rollouts.cancel("r1", actor="eve", may_target=reaches(team_b), scope=team_b)
    with pytest.raises(NotCovered):
        await rollouts.approve("r1", None, actor="eve", may_target=reaches(team_b), scope=team_b)
    # r2 was submitted unscoped: it may reach every agent, so only an unscoped caller acts on it
    with pytest.raises(NotCovered):
        await rollouts.close("r2", actor="bob", may_target=reaches(team_a), scope=team_a)
    assert not (await plane.rollouts.get("r1") or record).closed
    record = await rollouts.close("r1", actor="bob", may_target=reaches(team_a), scope=team_a)
    assert record.closed
    record = await rollouts.close("r2", actor="root", may_target=everyone, scope=())
    assert record.closed


async def test_an_event_squatting_a_later_childs_id_starts_no_wave(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    plane = await start_plane(nursery, tmp_path)
    await plane.agent("a1", {"ring": "canary"})
    await plane.agent("a2")
    await plane.agent("a3")
    # submitted before the rollout, as a single event, under the id a2's child will have
    squat = Event("r1_a2", "a2", K8sPayload((MANIFEST,)), ttl=600, created_at=time.time())
    await plane.rollouts.intake.accept(squat)
    strategy = Strategy(max_failures=1, waves=(Wave("ring=canary"), Wave("", approval=True)))
    await plane.create(strategy=strategy)
    record = await plane.until(
        "r1", lambda r: r.state is RolloutState.AWAITING_APPROVAL or r.state.final
    )
    assert [(e.what, e.wave) for e in record.timeline] == [
        ("accepted", None),
        ("wave_started", 0),
        ("awaiting_approval", 1),
    ]
    assert record.wave == 0
    states = {c.agent_id: (c.state, c.message) for c in record.clusters}
    assert states["a2"] == (
        "failed",
        "event id 'r1_a2' is taken by an event of another request",
    )
    assert states["a3"][0] == "pending"
    assert sorted(plane.script.agents_ran()) == ["a1", "a2"]  # a2 ran the single event
    assert [e.rollout_id for e in plane.script.ran if e.target_agent == "a2"] == [""]
    await plane.rollouts.approve("r1", 1, actor="bob", may_target=everyone)
    record = await plane.final("r1")
    assert record.state is RolloutState.FAILED
    assert {c.agent_id: c.state for c in record.clusters} == {
        "a1": "completed",
        "a2": "failed",
        "a3": "completed",
    }


async def test_a_standing_rollout_takes_no_agent_once_its_token_is_revoked(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    plane = await start_plane(nursery, tmp_path)
    now = time.time()
    _, token = new_token(name="ci", role=Role.SUBMIT, agents=("team-a-*",), now=now)
    await plane.store.create_token(token, AuditEntry(at=now, action="token.created"))
    await plane.agent("team-a-1", {"env": "prod"})
    asked = spec(selector="env=prod", standing=True, scope=("team-a-*",))
    await plane.rollouts.create(attrs.evolve(asked, token_id=token.id), may_target=everyone)
    await plane.until("r1", lambda r: r.state is RolloutState.STANDING)
    mover = plane.rollouts.mover
    mover.submitters.valid_for = 0  # read the token at every agent offered
    await plane.agent("team-a-2", {"env": "prod"})
    await plane.until("r1", lambda r: len(r.clusters) == 2 and r.state is RolloutState.STANDING)
    await plane.store.revoke_token(token.id, now, AuditEntry(at=now, action="token.revoked"))
    await plane.agent("team-a-3", {"env": "prod"})
    record = await plane.until(
        "r1", lambda r: r.timeline[-1].what == "revoked" or len(r.clusters) > 2
    )
    assert record.timeline[-1].message == "no more agents: the submitting token was revoked"
    again = agent_info("team-a-4", "t", {"env": "prod"})
    assert await mover.add_agents("r1", [again]) == 0  # noted once
    record = await plane.until("r1", lambda r: r.state is RolloutState.STANDING)
    assert [c.agent_id for c in record.clusters] == ["team-a-1", "team-a-2"]
    assert sorted(plane.script.agents_ran()) == ["team-a-1", "team-a-2"]
    assert [e.what for e in record.timeline].count("revoked") == 1
