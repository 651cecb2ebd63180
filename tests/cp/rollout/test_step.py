"""The rollout's moves, decided from its record and children (pure): waves in order, the
parallel limit, the failure budget, pauses, approvals, standing rollouts, cancel, and a restart
that finds children the record does not know of."""

from __future__ import annotations

import attrs

from tests.cp.rollout.fleet import DEFAULT, T0, Fleet, agents, record, spec
from transporter.cp.rollout import changes
from transporter.cp.rollout.step import current_wave
from transporter.protocol.model import (
    AgentRecord,
    EventState,
    ResourceResult,
    ResourceStatus,
)
from transporter.protocol.rollout import (
    PENDING,
    RolloutCluster,
    RolloutEntry,
    RolloutState,
    Strategy,
    Wave,
)

DONE = EventState.COMPLETED
FAILED = EventState.FAILED
FIVE = agents(a1={}, a2={}, a3={}, a4={}, a5={})


def fleet(
    strategy: Strategy = DEFAULT,
    *,
    fleet: list[AgentRecord] = FIVE,
    standing: bool = False,
    ttl: int = 600,
) -> Fleet:
    return Fleet(record(spec(strategy=strategy, standing=standing, ttl=ttl), fleet))


def test_one_wave_without_limits_starts_everything_and_completes() -> None:
    f = fleet()
    moves = f.step()
    assert f.started() == ["a1", "a2", "a3", "a4", "a5"]
    assert moves.changed and f.state() is RolloutState.RUNNING
    assert [e.what for e in f.record.timeline] == ["wave_started"]
    assert [a.action for a in moves.audits] == ["rollout.wave_started"]
    event = moves.start[0]
    assert (event.id, event.target_agent, event.rollout_id) == ("r1_a1", "a1", "r1")
    assert (event.created_at, event.ttl, event.created_by) == (T0, 600, "alice")
    assert not f.step().changed  # nothing new: nothing to store
    for agent in f.started():
        f.set(agent, DONE)
    moves = f.step(T0 + 5)
    assert f.state() is RolloutState.COMPLETED
    assert f.record.message == "5 of 5 clusters completed"
    assert [a.action for a in moves.audits] == ["rollout.completed"]
    assert set(f.states().values()) == {"completed"}
    assert moves.record.updated_at == T0 + 5


def test_max_parallel_keeps_that_many_working_in_agent_order() -> None:
    f = fleet(Strategy(max_parallel=2))
    f.step()
    assert f.started() == ["a1", "a2"]
    f.set("a2", EventState.IN_PROGRESS)
    assert not f.step().start
    assert f.states() == {
        "a1": "queued",
        "a2": "in_progress",
        "a3": PENDING,
        "a4": PENDING,
        "a5": PENDING,
    }
    f.set("a2", DONE)
    f.step()
    assert f.started() == ["a1", "a2", "a3"]


def test_max_parallel_counts_finished_clusters_out() -> None:
    f = fleet(Strategy(max_parallel=2, max_failures=5))
    f.step()
    f.set("a1", DONE)
    f.set("a2", FAILED)
    f.step()
    assert f.started() == ["a1", "a2", "a3", "a4"]
    assert f.states()["a5"] == PENDING
    f.set("a3", DONE)
    f.step()
    assert f.started() == ["a1", "a2", "a3", "a4", "a5"]


def test_percent_is_of_the_whole_rounded_up() -> None:
    f = fleet(Strategy(max_parallel_percent=30))  # 30 % of 5 = 1.5 -> 2
    f.step()
    assert f.started() == ["a1", "a2"]
    f = fleet(Strategy(max_parallel_percent=1))  # at least one
    f.step()
    assert f.started() == ["a1"]


LABELLED = agents(
    c1={"ring": "canary"}, c2={"ring": "canary"}, m1={"ring": "main"}, m2={}, m3={"ring": "main"}
)


def test_waves_by_selector_in_order_and_the_rest_last() -> None:
    waves = (Wave("ring=canary"), Wave("ring=main"))
    f = fleet(Strategy(waves=waves, max_failures=1), fleet=LABELLED)
    assert {c.agent_id: c.wave for c in f.record.clusters} == {
        "c1": 0,
        "c2": 0,
        "m1": 1,
        "m3": 1,
        "m2": 2,
    }
    f.step()
    assert f.started() == ["c1", "c2"]
    f.set("c1", DONE)
    f.step()
    assert f.started() == ["c1", "c2"]  # wave 1 waits for all of wave 0
    f.set("c2", FAILED)  # within max_failures 1
    f.step()
    assert f.started() == ["c1", "c2", "m1", "m3"]
    assert f.record.wave == 1  # the wave started last
    assert [e.wave for e in f.record.timeline if e.what == "wave_started"] == [0, 1]
    f.set("m1", DONE)
    f.set("m3", DONE)
    f.step()
    assert f.started() == ["c1", "c2", "m1", "m2", "m3"]
    f.set("m2", DONE)
    f.step()
    assert f.state() is RolloutState.FAILED
    assert f.record.message == "1 of 5 clusters did not complete: 1 failed"


def test_past_max_failures_nothing_more_starts_and_queued_children_are_cancelled() -> None:
    f = fleet(Strategy(max_parallel=4, max_failures=1))
    f.step()
    assert f.started() == ["a1", "a2", "a3", "a4"]
    f.set("a1", FAILED)
    f.set("a2", FAILED)
    f.set("a3", EventState.ASSIGNED)  # sent: it finishes
    moves = f.step()
    why = "not started: 2 clusters failed, more than max_failures 1"
    assert f.started() == ["a1", "a2", "a3", "a4"]
    assert moves.cancel == ("r1_a4",)
    assert moves.cancel_message == "cancelled: 2 clusters failed, more than max_failures 1"
    assert f.states()["a5"] == "cancelled"
    assert f.record.clusters[4].message == why
    assert f.state() is RolloutState.RUNNING
    assert f.record.message == "2 clusters failed, more than max_failures 1; 2 finishing"
    f.step()  # a4's cancel is stored: only a3 works
    assert f.record.message == "2 clusters failed, more than max_failures 1; 1 finishing"
    f.set("a3", DONE)
    moves = f.step()
    assert f.state() is RolloutState.FAILED
    assert f.record.message == (
        "2 clusters failed, more than max_failures 1: 2 clusters not started or cancelled"
    )
    assert [e.what for e in f.record.timeline].count("max_failures") == 1
    assert [a.action for a in moves.audits] == ["rollout.failed"]
    assert f.states() == {
        "a1": "failed",
        "a2": "failed",
        "a3": "completed",
        "a4": "cancelled",
        "a5": "cancelled",
    }


def test_a_pause_between_waves_waits_its_seconds() -> None:
    waves = (Wave("ring=canary"), Wave("", pause=60))
    f = fleet(Strategy(waves=waves), fleet=LABELLED)
    f.step()
    f.set("c1", DONE)
    f.set("c2", DONE)
    f.step(T0 + 10)
    assert f.state() is RolloutState.PAUSED
    assert f.record.resume_at == T0 + 70
    assert f.started() == ["c1", "c2"]
    f.step(T0 + 69)
    assert f.started() == ["c1", "c2"] and f.state() is RolloutState.PAUSED
    f.step(T0 + 70)
    assert f.started() == ["c1", "c2", "m1", "m2", "m3"]
    assert f.state() is RolloutState.RUNNING and f.record.resume_at is None


def test_the_first_wave_has_no_pause_but_may_await_approval() -> None:
    f = fleet(Strategy(waves=(Wave("", pause=60, approval=True),)))
    moves = f.step()
    assert f.started() == []
    assert f.state() is RolloutState.AWAITING_APPROVAL
    assert f.record.message == "wave 1 awaits approval"
    assert [a.action for a in moves.audits] == ["rollout.awaiting_approval"]
    assert not f.step().changed  # said once
    f.record = attrs.evolve(f.record, approved=(0,))
    f.step()
    assert len(f.started()) == 5


def test_approval_after_a_pause() -> None:
    waves = (Wave("ring=canary"), Wave("ring=main", pause=5, approval=True))
    f = fleet(Strategy(waves=waves), fleet=LABELLED)
    f.step()
    f.set("c1", DONE)
    f.set("c2", DONE)
    f.step(T0 + 1)
    assert f.state() is RolloutState.PAUSED
    f.step(T0 + 6)
    assert f.state() is RolloutState.AWAITING_APPROVAL
    assert f.started() == ["c1", "c2"]
    f.record = attrs.evolve(f.record, approved=(1,))
    f.step(T0 + 100)
    assert f.started() == ["c1", "c2", "m1", "m3"]
    # the implicit last wave has neither pause nor approval
    f.set("m1", DONE)
    f.set("m3", DONE)
    f.step(T0 + 101)
    assert f.started() == ["c1", "c2", "m1", "m2", "m3"]


def test_standing_waits_for_new_agents_until_closed() -> None:
    f = fleet(Strategy(max_failures=5), standing=True, fleet=agents(a1={}))
    f.step()
    f.set("a1", DONE)
    f.step(T0 + 5)
    assert f.state() is RolloutState.STANDING
    late = RolloutCluster("late", 0, "r1_late")
    f.record = attrs.evolve(
        f.record,
        clusters=(*f.record.clusters, late),
        timeline=(*f.record.timeline, RolloutEntry(T0 + 900, "agent_added", "late", 0)),
    )
    moves = f.step(T0 + 900)  # past the rollout's TTL: a late agent gets the whole TTL
    assert [(e.id, e.ttl, e.created_at) for e in moves.start] == [("r1_late", 600, T0 + 900)]
    assert f.state() is RolloutState.RUNNING
    f.set("late", FAILED)
    f.step()
    assert f.state() is RolloutState.STANDING
    f.record = attrs.evolve(f.record, closed=True)
    f.step()
    assert f.state() is RolloutState.FAILED
    assert f.record.message == "1 of 2 clusters did not complete: 1 failed"


def test_cancel_starts_nothing_more_and_ends_when_the_sent_ones_finish() -> None:
    f = fleet(Strategy(max_parallel=2))
    f.step()
    f.set("a1", EventState.IN_PROGRESS)
    f.record = attrs.evolve(f.record, cancel_requested=True, message="cancelled by bob")
    moves = f.step()
    assert moves.cancel == ("r1_a2",)
    f.step()
    assert f.states() == {
        "a1": "in_progress", "a2": "cancelled", "a3": "cancelled", "a4": "cancelled",
        "a5": "cancelled",
    }  # fmt: skip
    assert f.state() is RolloutState.RUNNING
    assert f.record.clusters[2].message == (
        "not started: the rollout was cancelled (cancelled by bob)"
    )
    f.set("a1", DONE)
    f.step()
    assert f.state() is RolloutState.CANCELLED
    assert f.record.message == "cancelled by bob"
    assert f.started() == ["a1", "a2"]


def test_a_restart_counts_the_children_it_finds_and_never_starts_a_wave_early() -> None:
    waves = (Wave("ring=canary"), Wave("ring=main"))
    f = fleet(Strategy(waves=waves, max_parallel=1), fleet=LABELLED)
    f.step()
    f.set("c1", DONE)
    f.step()
    f.set("c2", DONE)
    f.step()
    assert f.started() == ["c1", "c2", "m1"]
    # The step that started m1 crashed before its record was stored: the record read again is
    # the one before it (no wave 1 in its timeline, m1 pending in its cache).
    stale = f.record
    stale = attrs.evolve(
        stale,
        timeline=tuple(e for e in stale.timeline if e.wave != 1),
        clusters=tuple(
            attrs.evolve(c, state=PENDING, phase="", message="") if c.agent_id == "m1" else c
            for c in stale.clusters
        ),
    )
    f.record = stale
    assert current_wave(stale, f.children()) == 1
    moves = f.step()
    assert moves.start == ()  # m1 is working (its child exists): max_parallel 1 is used up
    assert f.states()["m1"] == "queued"
    # The wave's start, lost with the crashed step's record, is written now (and audited).
    assert [e.wave for e in f.record.timeline if e.what == "wave_started"] == [0, 1]
    assert "rollout.wave_started" in [a.action for a in moves.audits]
    assert f.record.wave == 1
    f.set("m1", DONE)
    f.step()
    assert f.started() == ["c1", "c2", "m1", "m3"]  # m2 (last wave) waits for m3
    f.set("m3", DONE)
    f.step()
    assert f.started() == ["c1", "c2", "m1", "m2", "m3"]


def test_a_cluster_whose_turn_comes_after_the_ttl_expires_unstarted() -> None:
    f = fleet(Strategy(max_parallel=1, max_failures=10), ttl=100)
    f.step()
    assert [e.ttl for e in f.last.start] == [100]  # type: ignore[union-attr]
    f.set("a1", DONE)
    f.step(T0 + 40)
    assert [e.ttl for e in f.last.start] == [60]  # type: ignore[union-attr]
    f.set("a2", DONE)
    f.step(T0 + 100)
    assert f.started() == ["a1", "a2"]
    assert f.states()["a3"] == "expired"
    assert f.record.clusters[2].message == "not started: the rollout's TTL passed before its turn"
    assert f.state() is RolloutState.FAILED


def test_an_event_of_another_request_under_a_childs_id_is_not_adopted() -> None:
    f = fleet(fleet=agents(a1={}))
    theirs = f.step().start[0]
    f.events["r1_a1"] = attrs.evolve(f.events["r1_a1"], event=attrs.evolve(theirs, rollout_id=""))
    f.step()
    assert f.states() == {"a1": "failed"}
    assert "taken by an event of another request" in f.record.clusters[0].message


def test_a_plans_apply_that_found_changes_is_drifted() -> None:
    f = fleet(fleet=agents(a1={}), strategy=Strategy(max_failures=1))
    f.step()
    drifted = ResourceResult("v1", "ConfigMap", "a", "default", ResourceStatus.DRIFTED)
    f.set("a1", FAILED, "drifted: 1 object", (drifted,))
    f.step()
    assert f.states() == {"a1": "drifted"}
    assert f.record.message == "1 of 1 clusters did not complete: 1 drifted"


def test_the_record_keeps_a_short_copy_of_a_childs_message() -> None:
    f = fleet(fleet=agents(a1={}), strategy=Strategy(max_failures=1))
    f.step()
    f.set("a1", FAILED, "x" * 5000)
    f.step()
    message = f.record.clusters[0].message
    assert len(message) == 300 and message.endswith("…")
    assert f.events["r1_a1"].message == "x" * 5000


def test_a_late_agent_in_a_started_wave_leaves_the_approval_awaited() -> None:
    waves = (Wave("ring=canary"), Wave("", approval=True))
    fleet_ = agents(c1={"ring": "canary"}, m1={})
    f = fleet(Strategy(waves=waves), standing=True, fleet=fleet_)
    f.step()
    f.set("c1", DONE)
    f.step(T0 + 1)
    assert f.state() is RolloutState.AWAITING_APPROVAL
    late = RolloutCluster("c2", 0, "r1_c2")  # a standing rollout took it, in wave 1
    f.record = attrs.evolve(
        f.record,
        clusters=(*f.record.clusters, late),
        timeline=(*f.record.timeline, RolloutEntry(T0 + 2, "agent_added", "c2", 0)),
    )
    moves = f.step(T0 + 2)
    assert [e.id for e in moves.start] == ["r1_c2"] and not moves.audits
    assert f.state() is RolloutState.AWAITING_APPROVAL
    assert f.record.message == "wave 2 awaits approval"
    f.set("c2", DONE)
    moves = f.step(T0 + 3)
    assert f.state() is RolloutState.AWAITING_APPROVAL and not moves.audits
    assert [e.what for e in f.record.timeline].count("awaiting_approval") == 1
    approve = changes.approving(None, "bob", T0 + 4)
    made = approve(f.record)
    assert made is not None
    f.record = made[0]
    f.step(T0 + 4)
    assert f.started() == ["c1", "c2", "m1"]
    assert f.state() is RolloutState.RUNNING
