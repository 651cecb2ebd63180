"""Rollouts: ``GET /rollouts``, ``GET /rollouts/{id}``, and ``approve``, ``cancel`` and ``close``.

A ``read`` or ``submit`` token sees a rollout only when it reaches every agent of it (the agents
named and every cluster matched): a rollout's view names its agents. Approving, cancelling or
closing one needs a ``submit`` token that reaches every cluster of it (the engine checks, and
refuses with 403 naming the agents it does not reach).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Any

import trio
from quart import Blueprint, request

from transporter.cp.api.access import Caller, Refused, needs
from transporter.cp.api.echo import quoted
from transporter.cp.api.errors import Answer, BadQuery, BadRequest, NotFound
from transporter.cp.api.paging import visible_page
from transporter.cp.api.queries import caller, int_arg, json_body
from transporter.cp.api.rollout_views import Scrub, detail, needs_scrubbing, scrubber, summary
from transporter.cp.api.services import services
from transporter.cp.api.submit import scope
from transporter.cp.openapi.bounds import MAX_WAVE, ROLLOUTS_LIMIT, ROLLOUTS_PAGE
from transporter.cp.rollout.targets import covers_scope
from transporter.protocol.rollout import RolloutKind, RolloutRecord, RolloutState
from transporter.security.tokens import Role
from transporter.store.base import Page

routes = Blueprint("rollouts", __name__)

SCAN_PAGE = 25
SCAN_PAGES = 4
"""A token that sees only some agents: the store's pages read for one answer (as for events:
an answer may hold fewer items than ``limit`` and still give a ``cursor``). A record is read
whole (its manifests, up to 3 MB, and its clusters), so an answer reads no more of them than
the largest page an unscoped token may ask for (``ROLLOUTS_LIMIT``)."""


@routes.get("/rollouts")
@needs(Role.READ)
async def list_rollouts() -> Answer:
    """Newest first; ``?state=``, ``?kind=`` (``apply`` or ``plan``), ``?limit=``, ``?cursor=``."""
    return await listing(enum_arg("kind", RolloutKind))


async def listing(kind: RolloutKind | None) -> Answer:
    """A page of summaries (``GET /rollouts``, ``GET /plans``)."""
    who = caller()
    state = enum_arg("state", RolloutState)
    limit = int_arg("limit", ROLLOUTS_PAGE, 1, ROLLOUTS_LIMIT)
    cursor = request.args.get("cursor") or None
    store = services().store
    if who.reaches_every_agent:
        page = await store.list_rollouts(state=state, kind=kind, limit=limit, cursor=cursor)
    else:
        page = await _visible(who, state, kind, limit, cursor)
    items = await shown(page.items, summary)
    return {"items": items, "cursor": page.cursor}, 200


def enum_arg[E: StrEnum](name: str, kind: type[E]) -> E | None:
    text = request.args.get(name)
    if text is None:
        return None
    try:
        return kind(text)
    except ValueError:
        raise BadQuery(f"{name} must be one of {', '.join(kind)}") from None


def visible(who: Caller, record: RolloutRecord) -> bool:
    """Whether ``who`` may see the rollout: it reaches every agent named and every cluster, and,
    for a selector's rollout, every agent it may still take (:func:`covers_scope`, the engine's
    rule): a rollout with no cluster yet, or few, is not thereby anyone's."""
    if who.reaches_every_agent or who.token is None:
        return True
    spec = record.spec
    agents = (*spec.agents, *(cluster.agent_id for cluster in record.clusters))
    if not all(who.may_target(agent) for agent in agents):
        return False
    return bool(spec.agents) or covers_scope(who.token.agents, spec.scope)


async def _visible(
    who: Caller,
    state: RolloutState | None,
    kind: RolloutKind | None,
    limit: int,
    cursor: str | None,
) -> Page[RolloutRecord]:
    store = services().store
    return await visible_page(
        lambda after: store.list_rollouts(state=state, kind=kind, limit=SCAN_PAGE, cursor=after),
        lambda record: visible(who, record),
        limit=limit,
        cursor=cursor,
        pages=SCAN_PAGES,
    )


async def shown(
    records: Sequence[RolloutRecord], view: Callable[[RolloutRecord, Scrub], dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each record through ``view``, its messages scrubbed; in a worker thread when some
    rollout's manifests must be parsed for that."""

    def work() -> list[dict[str, Any]]:
        return [view(record, scrubber(record)) for record in records]

    if not any(needs_scrubbing(record) for record in records):
        return work()
    return await trio.to_thread.run_sync(work, limiter=services().checking)


async def readable(rollout_id: str, kind: RolloutKind | None = None) -> RolloutRecord:
    """The rollout (of ``kind``, if given) if the caller may see it: 404 or 403 otherwise."""
    who = caller()
    record = await services().rollouts.get(rollout_id)
    if record is None or (kind is not None and record.spec.kind is not kind):
        what = "plan" if kind is RolloutKind.PLAN else "rollout"
        raise NotFound(f"no {what} {quoted(rollout_id)}")
    if not visible(who, record):
        raise Refused(
            403,
            f"{record.spec.kind.value} {rollout_id!r} reaches agents outside your token's"
            f" reach: {who.reach('read')}",
            caller=who,
        )
    return record


@routes.get("/rollouts/<rollout_id>")
@needs(Role.READ)
async def get_rollout(rollout_id: str) -> Answer:
    record = await readable(rollout_id)
    (view,) = await shown([record], detail)
    return view, 200


async def optional_body() -> dict[str, Any]:
    """A body that may be left out (or be ``{}``); :class:`BadRequest` unless an object."""
    if not (await request.get_data()).strip():
        return {}
    body = await json_body("invalid_request", "body")
    if not isinstance(body, dict):
        raise BadRequest("body", "must be a JSON object")
    return body


@routes.post("/rollouts/<rollout_id>/approve")
@needs(Role.SUBMIT)
async def approve(rollout_id: str) -> Answer:
    """``{"wave": n}`` (optional: the wave that waits)."""
    body = await optional_body()
    if set(body) - {"wave"}:
        raise BadRequest(sorted(set(body) - {"wave"})[0], "unknown field")
    wave = body.get("wave")
    if "wave" in body and not (
        isinstance(wave, int) and not isinstance(wave, bool) and 0 <= wave <= MAX_WAVE
    ):
        raise BadRequest("wave", f"must be a wave's index, 0 to {MAX_WAVE}")
    who = caller()
    record = await services().rollouts.approve(
        rollout_id, wave, actor=who.identity, may_target=who.may_target, scope=scope(who)
    )
    approved = wave if wave is not None else (record.approved[-1] if record.approved else 0)
    return {"rollout_id": record.spec.id, "approved": approved}, 200


@routes.post("/rollouts/<rollout_id>/cancel")
@needs(Role.SUBMIT)
async def cancel(rollout_id: str) -> Answer:
    """Start nothing more; what runs finishes."""
    await _no_fields()
    who = caller()
    record, cancelled, running = await services().rollouts.cancel(
        rollout_id, actor=who.identity, may_target=who.may_target, scope=scope(who)
    )
    answer = {"rollout_id": record.spec.id, "state": record.state.value}
    return {**answer, "cancelled": cancelled, "running": running}, 200


@routes.post("/rollouts/<rollout_id>/close")
@needs(Role.SUBMIT)
async def close(rollout_id: str) -> Answer:
    """A standing rollout takes no new agent any more."""
    await _no_fields()
    who = caller()
    record = await services().rollouts.close(
        rollout_id, actor=who.identity, may_target=who.may_target, scope=scope(who)
    )
    answer = {"rollout_id": record.spec.id, "state": record.state.value}
    return {**answer, "closed": record.closed}, 200


async def _no_fields() -> None:
    body = await optional_body()
    if body:
        raise BadRequest(sorted(body)[0], "unknown field")
