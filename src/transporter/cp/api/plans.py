"""Plans: ``POST /plans``, ``GET /plans``, ``GET /plans/{id}`` and ``POST /plans/{id}/apply``.

A plan is a rollout of kind ``plan`` (``GET /rollouts?kind=plan`` lists them too): each matched
agent dry-runs the manifests on its cluster and reports, object by object, what an apply would
do, and the fingerprint of what it saw. Applying the plan makes a rollout that applies only
that: an object that changed since (or was not planned) is not touched, and comes back
``drifted``. A plan can be applied until its ``ttl`` has passed (410 ``plan_expired``).
"""

from __future__ import annotations

import attrs
import trio
from quart import Blueprint, request

from transporter.cp.api.access import needs
from transporter.cp.api.echo import quoted
from transporter.cp.api.errors import Answer, BadRequest, NotFound
from transporter.cp.api.queries import caller, json_body
from transporter.cp.api.rollout_views import plan_detail, scrubber
from transporter.cp.api.rollouts import listing, optional_body, readable
from transporter.cp.api.services import services
from transporter.cp.api.submit import parse_and_start, scope, waves
from transporter.cp.openapi.bounds import MAX_PLAN_CLUSTERS
from transporter.protocol.model import Action
from transporter.protocol.rollout import RolloutKind
from transporter.protocol.rollout_request import parse_plan, parse_plan_apply
from transporter.protocol.submission import InvalidEvent
from transporter.security.tokens import Role

routes = Blueprint("plans", __name__)


@routes.post("/plans")
@needs(Role.SUBMIT)
async def submit_plan() -> Answer:
    """202 ``{plan_id, agents, status}``; 200 for a repeat of a stored plan's id and body."""
    who = caller()
    body = await json_body("invalid_event", "body")
    return await parse_and_start(who, body, parse_plan)


@routes.get("/plans")
@needs(Role.READ)
async def list_plans() -> Answer:
    """``GET /rollouts?kind=plan``."""
    return await listing(RolloutKind.PLAN)


@routes.get("/plans/<plan_id>")
@needs(Role.READ)
async def get_plan(plan_id: str) -> Answer:
    """The plan's rollout view, each cluster with its objects' results (diffs and
    fingerprints), and ``expires_at``."""
    record = await readable(plan_id, RolloutKind.PLAN)
    agent = request.args.get("agent")
    if agent is not None:
        record = attrs.evolve(
            record, clusters=tuple(c for c in record.clusters if c.agent_id == agent)
        )
        if not record.clusters:
            raise NotFound(f"plan {plan_id!r} has no cluster for agent {quoted(agent)}")
    shown_for = attrs.evolve(record, clusters=record.clusters[:MAX_PLAN_CLUSTERS])
    children = await services().rollouts.children(shown_for)

    def view() -> dict[str, object]:
        return plan_detail(record, children, scrubber(record))

    shown = await trio.to_thread.run_sync(view, limiter=services().checking)
    return shown, 200


@routes.post("/plans/<plan_id>/apply")
@needs(Role.SUBMIT)
async def apply_plan(plan_id: str) -> Answer:
    """A rollout of what the plan planned, over the clusters whose plan completed."""
    who = caller()
    try:
        asked = parse_plan_apply(await optional_body())
    except InvalidEvent as exc:
        raise BadRequest(exc.field, exc.problem) from None
    found = services()
    plan = await found.rollouts.get(plan_id)
    if plan is not None and asked.wait_ready and plan.spec.payload.action is not Action.APPLY:
        raise BadRequest("wait_ready", "is only for a plan of the action apply")
    record, created = await found.rollouts.apply_plan(
        plan_id,
        asked,
        actor=who.identity,
        may_target=who.may_target,
        scope=scope(who),
    )
    if not created:
        return {"rollout_id": record.spec.id, "status": "exists", "state": record.state.value}, 200
    agents = sorted(cluster.agent_id for cluster in record.clusters)
    answer = {"rollout_id": record.spec.id, "status": "accepted", "agents": agents}
    return {**answer, "waves": waves(record)}, 202
