"""Applying a plan: the rollout that applies what the plan planned, and only that (pure).

A plan is a rollout of kind ``plan``: its spec keeps the action asked for (``apply`` or
``delete``) and its children carry the action ``plan``. Its apply is a rollout of kind
``apply`` over the agents whose plan completed, with the plan's manifests and action, and for
each agent the fingerprint of every object its plan saw (``expect``): the agent touches
nothing that changed since, nor anything the plan did not cover (refused or failed objects are
left out of ``expect``, so they come back ``drifted``).

A plan's children have the first half of its ``ttl``
(:func:`~.children.plan_child_ttl`): a cluster whose agent never comes expires by then, so the
plan finishes (that cluster ``expired``) and can still be applied, to the clusters that
planned, in its second half.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import attrs

from transporter.cp.rollout.children import owned
from transporter.cp.rollout.errors import NotAPlan, PlanExpired, PlanNotReady
from transporter.protocol.model import (
    Action,
    EventRecord,
    EventState,
    ResourceStatus,
    object_key,
)
from transporter.protocol.rollout import RolloutKind, RolloutRecord, RolloutSpec, Strategy
from transporter.protocol.rollout_request import PlanApply

NOT_PLANNED = frozenset({ResourceStatus.REFUSED, ResourceStatus.FAILED})
PLAN_STRATEGY = Strategy(max_failures=100_000)
"""A plan's strategy: every cluster at once, and none left out because others failed."""


def check_plan(plan: RolloutRecord, now: float) -> None:
    """Refuse to apply what is not a finished, current plan."""
    spec = plan.spec
    if spec.kind is not RolloutKind.PLAN:
        raise NotAPlan(f"{spec.id!r} is a rollout, not a plan")
    if now >= spec.created_at + spec.ttl:
        raise PlanExpired(
            f"plan {spec.id!r} expired {now - spec.created_at - spec.ttl:.0f} s ago (its ttl"
            f" is {spec.ttl} s): plan again"
        )
    if not plan.state.final:
        raise PlanNotReady(
            f"plan {spec.id!r} is {plan.state.value}: apply it once every cluster has planned"
        )


def expects(
    plan: RolloutRecord, children: Sequence[EventRecord | None]
) -> dict[str, dict[str, str]]:
    """For each agent whose plan completed (and planned something), the fingerprints its plan
    saw by object."""
    found: dict[str, dict[str, str]] = {}
    for cluster, child in zip(plan.clusters, children, strict=True):
        if child is None or child.state is not EventState.COMPLETED:
            continue
        if not owned(plan.spec, cluster, child):  # another request's event under its id
            continue
        seen = {
            object_key(r.api_version, r.kind, r.namespace, r.name): r.fingerprint
            for r in child.resources
            if r.status not in NOT_PLANNED and r.fingerprint
        }
        if seen:
            found[cluster.agent_id] = seen
    return found


def apply_spec(
    plan: RolloutRecord,
    children: Sequence[EventRecord | None],
    asked: PlanApply,
    *,
    actor: str,
    now: float,
) -> RolloutSpec:
    """The rollout applying ``plan`` (checked with :func:`check_plan`) as ``asked``."""
    found = expects(plan, children)
    payload = plan.spec.payload
    if payload.action is Action.PLAN:  # the action planned is kept in the plan's spec
        payload = attrs.evolve(payload, action=Action.APPLY)
    if payload.action is Action.APPLY:
        payload = attrs.evolve(
            payload, wait_ready=asked.wait_ready, ready_timeout=asked.ready_timeout
        )
    return RolloutSpec(
        id=asked.rollout_id or apply_id(plan.spec.id),
        kind=RolloutKind.APPLY,
        payload=attrs.evolve(payload, expect={}),
        created_at=now,
        ttl=asked.ttl,
        created_by=actor,
        agents=tuple(sorted(found)),
        strategy=asked.strategy,
        priority=plan.spec.priority,
        labels=dict(plan.spec.labels),
        scope=plan.spec.scope,
        plan_id=plan.spec.id,
        expects=found,
    )


def same_apply(applied: RolloutSpec, plan_id: str, asked: PlanApply, actor: str) -> bool:
    """Whether the rollout ``applied`` is what this request to apply ``plan_id`` would make
    (a repeat of it)."""
    payload = applied.payload
    same_ready = (payload.wait_ready, payload.ready_timeout) == (
        asked.wait_ready,
        asked.ready_timeout,
    )
    return (
        applied.plan_id == plan_id
        and applied.strategy == asked.strategy
        and applied.ttl == asked.ttl
        and applied.created_by == actor
        and (same_ready or payload.action is not Action.APPLY)
    )


def apply_id(plan_id: str) -> str:
    """A new rollout id for a plan's apply: the plan's (cut) and a random part."""
    return f"{plan_id[:55]}-{secrets.token_hex(4)}"
