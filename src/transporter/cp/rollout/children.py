"""A rollout's child event for one cluster: an ordinary event, signed and delivered like any
other, whose id (:func:`~transporter.protocol.rollout.child_event_id`) makes starting it twice
(after a crash, or by two replicas) store it once."""

from __future__ import annotations

import math

import attrs

from transporter.protocol.model import Action, Event, EventRecord, EventState, ResourceStatus
from transporter.protocol.rollout import DRIFTED, RolloutCluster, RolloutKind, RolloutSpec
from transporter.store.base import EventProgress


@attrs.frozen
class NotStarted:
    """Why a cluster's turn came and no child could be made: it ends in ``state`` without one."""

    state: str
    message: str


def child_event(
    spec: RolloutSpec, cluster: RolloutCluster, now: float, *, late: bool
) -> Event | NotStarted:
    """The child for ``cluster``, created ``now``. Its TTL is what remains of the rollout's
    (``created_at + ttl``, in whole seconds rounded up), so that every child of a rollout ends
    by the same time, within a second; a standing rollout's ``late`` cluster (an agent that
    registered after it was accepted) gets the whole ``ttl`` from now.

    A plan's children plan (action ``plan``, and ``plan_of`` the action planned, which the
    plan's spec keeps for the apply that follows) within the plan's first half-life
    (:func:`plan_child_ttl`); a plan's apply gives each child what its cluster's plan saw
    (``expect``), and starts none for a cluster it has nothing for, since an empty ``expect``
    would apply every object unchecked."""
    remaining = spec.created_at + spec.ttl - now
    if spec.kind is RolloutKind.PLAN:
        remaining = spec.created_at + plan_child_ttl(spec.ttl) - now
    ttl = spec.ttl if late else math.ceil(remaining)
    if not late and remaining <= 0:
        return NotStarted(
            EventState.EXPIRED.value, "not started: the rollout's TTL passed before its turn"
        )
    payload = spec.payload
    if spec.kind is RolloutKind.PLAN:
        planned = Action.APPLY if payload.action is Action.PLAN else payload.action
        payload = attrs.evolve(payload, action=Action.PLAN, plan_of=planned, expect={})
    elif spec.plan_id:
        expect = spec.expects.get(cluster.agent_id)
        if not expect:
            return NotStarted(
                EventState.FAILED.value, "not started: the plan has nothing for this agent"
            )
        payload = attrs.evolve(payload, expect=dict(expect))
    return Event(
        id=cluster.event_id,
        target_agent=cluster.agent_id,
        payload=payload,
        ttl=ttl,
        created_at=now,
        priority=spec.priority,
        labels=dict(spec.labels),
        created_by=spec.created_by,
        rollout_id=spec.id,
    )


def plan_child_ttl(plan_ttl: int) -> int:
    """A plan's children's TTL: the plan's first half (rounded up, at least 1 s). A cluster
    whose agent does not come expires by then, so the plan finishes (that cluster ``expired``)
    while the second half is left to apply what the others planned."""
    return max(1, math.ceil(plan_ttl / 2))


def owned(spec: RolloutSpec, cluster: RolloutCluster, child: EventProgress | EventRecord) -> bool:
    """Whether the event stored under the cluster's child id is this rollout's child (and not
    an event someone submitted under that id before)."""
    if isinstance(child, EventRecord):
        child = EventProgress.of(child)
    return child.rollout_id == spec.id and child.target_agent == cluster.agent_id


def cluster_state(child: EventProgress) -> str:
    """A cluster's state from its child: the event's, or ``drifted`` for a plan's apply that
    failed because objects had changed since the plan."""
    if child.state is EventState.FAILED and ResourceStatus.DRIFTED in child.resource_statuses:
        return DRIFTED
    return child.state.value
