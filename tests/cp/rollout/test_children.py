"""A rollout's child events (pure): TTL, plans, a plan's apply and what it expects."""

from __future__ import annotations

import attrs

from tests.cp.rollout.fleet import T0, agents, record, spec
from transporter.cp.rollout.children import NotStarted, child_event, plan_child_ttl
from transporter.cp.rollout.plans import apply_spec
from transporter.protocol.model import (
    Action,
    EventRecord,
    EventState,
    ResourceResult,
    ResourceStatus,
)
from transporter.protocol.rollout import RolloutCluster, RolloutKind
from transporter.protocol.rollout_request import PlanApply

CLUSTER = RolloutCluster("a1", 0, "r1_a1")


def test_a_child_gets_what_remains_of_the_rollouts_ttl() -> None:
    made = child_event(spec(ttl=100), CLUSTER, T0 + 30.7, late=False)
    assert not isinstance(made, NotStarted)
    assert (made.ttl, made.created_at, made.expires_at <= T0 + 101) == (70, T0 + 30.7, True)
    assert made.payload == spec().payload
    late = child_event(spec(ttl=100), CLUSTER, T0 + 5000, late=True)
    assert not isinstance(late, NotStarted) and late.ttl == 100
    gone = child_event(spec(ttl=100), CLUSTER, T0 + 100, late=False)
    assert gone == NotStarted("expired", "not started: the rollout's TTL passed before its turn")


def test_a_plans_child_plans_and_a_plans_apply_expects_what_it_saw() -> None:
    plan = child_event(spec(kind=RolloutKind.PLAN), CLUSTER, T0, late=False)
    assert not isinstance(plan, NotStarted)
    assert plan.payload.action is Action.PLAN and plan.rollout_id == "r1"
    assert plan.payload.plan_of is Action.APPLY
    expects = {"a1": {"/ConfigMap/default/a": "f1"}}
    applying = attrs.evolve(spec(), plan_id="p1", expects=expects)
    made = child_event(applying, CLUSTER, T0, late=False)
    assert not isinstance(made, NotStarted)
    assert made.payload.action is Action.APPLY
    assert made.payload.expect == {"/ConfigMap/default/a": "f1"}
    other = child_event(applying, RolloutCluster("a2", 0, "r1_a2"), T0, late=False)
    assert other == NotStarted("failed", "not started: the plan has nothing for this agent")


def test_a_plans_apply_applies_what_was_planned() -> None:
    planned = spec(kind=RolloutKind.PLAN)
    plan = record(
        attrs.evolve(planned, payload=attrs.evolve(planned.payload, action=Action.PLAN)),
        agents(a1={}),
    )
    made = child_event(plan.spec, plan.clusters[0], T0, late=False)
    assert not isinstance(made, NotStarted)
    seen = ResourceResult(
        "apps/v1", "Deployment", "web", "prod", ResourceStatus.UNCHANGED, fingerprint="f"
    )
    refused = ResourceResult("v1", "Secret", "s", "prod", ResourceStatus.REFUSED, fingerprint="g")
    child = EventRecord(made, 1, EventState.COMPLETED, resources=(seen, refused))
    applied = apply_spec(plan, [child], PlanApply(ttl=60), actor="bob", now=T0)
    assert applied.payload.action is Action.APPLY
    assert applied.expects == {"a1": {"apps/Deployment/prod/web": "f"}}
    assert applied.id.startswith("r1-") and len(applied.id) == len("r1-") + 8


def test_a_plan_of_a_delete_says_so_to_its_children() -> None:
    planned = spec(kind=RolloutKind.PLAN)
    deleting = attrs.evolve(planned, payload=attrs.evolve(planned.payload, action=Action.DELETE))
    made = child_event(deleting, CLUSTER, T0, late=False)
    assert not isinstance(made, NotStarted)
    assert (made.payload.action, made.payload.plan_of) == (Action.PLAN, Action.DELETE)
    assert deleting.payload.action is Action.DELETE  # the plan keeps what it plans


def test_a_plans_children_expire_within_its_first_half() -> None:
    assert [plan_child_ttl(t) for t in (1, 2, 3, 600, 3601)] == [1, 1, 2, 300, 1801]
    made = child_event(spec(kind=RolloutKind.PLAN, ttl=600), CLUSTER, T0 + 100.5, late=False)
    assert not isinstance(made, NotStarted)
    assert made.ttl == 200 and made.expires_at <= T0 + 301
    late = child_event(spec(kind=RolloutKind.PLAN, ttl=600), CLUSTER, T0 + 300, late=False)
    assert isinstance(late, NotStarted) and late.state == "expired"
