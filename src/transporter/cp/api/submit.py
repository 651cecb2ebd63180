"""Submitting events: ``POST /events`` and ``POST /events/batch``; ``POST /events`` with
``target_agents`` or ``selector`` submits a rollout (:mod:`transporter.protocol.rollout_request`),
which the rollout engine resolves and starts (:mod:`transporter.cp.rollout`).

An event is ``created_by`` its token, and a token may submit only for the agents its patterns
match (403). Checking YAML is CPU work: a large request is checked in a worker thread, so that
one big event cannot hold up every other request; a small one inline, where a thread hop would
cost more than the check.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

import attrs
import trio
from quart import Blueprint, request

from transporter.cp.api.access import Caller, Refused, listing, needs
from transporter.cp.api.errors import Answer, error
from transporter.cp.api.queries import (
    caller,
    fresh_caller,
    json_body,
    kept_view,
    record_refusal,
    revoked_refusal,
    token_checked,
)
from transporter.cp.api.rollout_views import waves_of
from transporter.cp.api.services import Services, services
from transporter.cp.rollout.targets import MAX_CLUSTERS, matched
from transporter.protocol.model import Event
from transporter.protocol.rollout import RolloutKind, RolloutRecord, RolloutSpec
from transporter.protocol.rollout_request import (
    MAX_ROLLOUT_BYTES,
    RolloutTooLarge,
    check_total,
    child_bytes,
    is_rollout_body,
    parse_rollout,
)
from transporter.protocol.submission import EventTooLarge, InvalidEvent, parse_submission
from transporter.security.tokens import Role
from transporter.store.base import EventConflict, TokenRevoked

routes = Blueprint("submit", __name__)

INLINE_CHECK_BYTES = 64 * 1024
"""Requests smaller than this are checked on the event loop; larger ones in a thread."""
MAX_BATCH = 1000
"""Events in one ``POST /events/batch``."""


class ParseSpec(Protocol):
    """:func:`~transporter.protocol.rollout_request.parse_rollout` or ``parse_plan``."""

    def __call__(
        self,
        body: Any,
        *,
        now: float,
        new_id: Callable[[], str],
        created_by: str | None = None,
        scope: tuple[str, ...] = (),
    ) -> RolloutSpec: ...


def new_id() -> str:
    return str(uuid.uuid4())


def _refusal(problem: InvalidEvent) -> dict[str, Any]:
    kind = "event_too_large" if isinstance(problem, EventTooLarge) else "invalid_event"
    if isinstance(problem, RolloutTooLarge):
        kind = "rollout_too_large"
    return {"error": kind, "message": problem.problem, "field": problem.field}


def refused(problem: InvalidEvent) -> Answer:
    """The answer to a submission that is not valid: 413 over a limit, else 400."""
    return _refusal(problem), 413 if isinstance(problem, EventTooLarge) else 400


async def off_loop[T](check: Callable[[], T]) -> T:
    """``check()`` (CPU work over the request's body): inline for a small request, else in a
    worker thread."""
    if (request.content_length or 0) < INLINE_CHECK_BYTES:
        return check()
    return await trio.to_thread.run_sync(check, limiter=services().checking)


async def _checked(bodies: list[Any], by: str | None) -> list[Event | InvalidEvent]:
    """Each submission as an event, or why it is not one, in its place."""
    now = time.time()

    def check() -> list[Event | InvalidEvent]:
        out: list[Event | InvalidEvent] = []
        for body in bodies:
            try:
                out.append(parse_submission(body, now=now, new_id=new_id, created_by=by))
            except InvalidEvent as exc:
                out.append(exc)
        return out

    return await off_loop(check)


def _targets(items: list[Any]) -> list[str]:
    """The ``target_agent`` of each submission that names one (valid or not: it is checked
    later, with the rest of the event)."""
    return [
        item["target_agent"]
        for item in items
        if isinstance(item, dict) and isinstance(item.get("target_agent"), str)
    ]


@routes.post("/events")
@needs(Role.SUBMIT, kept=True)
@kept_view
async def submit() -> Answer:
    """One event: 202 accepted, 200 when an event of that id exists already, 409 when it
    exists with other contents. With ``target_agents`` or ``selector``: a rollout (whose
    writes do not check the token: it is read for this request)."""
    who = caller()
    body = await json_body("invalid_event", "body")
    if is_rollout_body(body):
        if who.kept:
            who = await fresh_caller()
            token_checked()
        return await _submit_rollout(who, body)
    for agent in _targets([body]):
        who.require_target(agent, "submit events for")
    (event,) = await _checked([body], who.created_by)
    if isinstance(event, InvalidEvent):
        return refused(event)
    try:
        answer = await store_event(services(), event, who.token_id)
    except TokenRevoked:
        raise await revoked_refusal() from None
    token_checked()
    return answer


async def store_event(found: Services, event: Event, token_id: str | None) -> Answer:
    """Store one checked ``event`` submitted with the token ``token_id``: 202 accepted, 200
    when an event of that id exists already, 409 when it exists with other contents (all found
    once the write checked the token); :class:`TokenRevoked` when it is revoked."""
    try:
        record, created = await found.intake.accept(event, token_id)
    except EventConflict as exc:
        return error(409, "conflict", str(exc), field="id")
    known = await found.intake.agent_known(event.target_agent)
    answer = {"event_id": record.event.id, "agent_known": known}
    if created:
        return {**answer, "status": "accepted"}, 202
    return {**answer, "status": "exists", "state": record.state.value}, 200


async def _submit_rollout(who: Caller, body: Any) -> Answer:
    return await parse_and_start(who, body, parse_rollout)


async def parse_and_start(who: Caller, body: Any, parse: ParseSpec) -> Answer:
    """A rollout's (or a plan's) body checked by ``parse`` off the loop (a body holds up to
    megabytes of manifests), with its id made here when it names none, then :func:`start`-ed;
    a body that is not valid is a 400 naming the field."""

    def check() -> tuple[RolloutSpec, int]:
        spec = parse(
            body, now=time.time(), new_id=new_id, created_by=who.created_by, scope=scope(who)
        )
        return spec, child_bytes(spec)

    try:
        spec, child = await off_loop(check)
    except InvalidEvent as exc:
        return refused(exc)
    return await start(who, spec, child)


def scope(who: Caller) -> tuple[str, ...]:
    """The agents a rollout of ``who`` may ever reach (empty: every agent)."""
    return () if who.token is None or who.reaches_every_agent else who.token.agents


async def start(who: Caller, spec: RolloutSpec, child: int) -> Answer:
    """Hand a rollout (or a plan) to the engine: 202 with the agents it matched, or 200 when
    one of that id exists already (409 with another spec, 403 when the token does not reach
    every agent matched, 400 ``no_match``: the engine's refusals, answered in :mod:`.errors`).
    ``child``: the bytes of its largest child event (:func:`child_bytes`); a selector whose
    children could be more than :data:`MAX_ROLLOUT_BYTES` together is refused (413) when the
    agents it matches now make them so. The spec keeps the id of the caller's token."""
    spec = attrs.evolve(spec, token_id="" if who.token is None else who.token.id)
    if spec.selector and child * MAX_CLUSTERS > MAX_ROLLOUT_BYTES:
        found = len(matched(spec, await services().store.list_agents()))
        try:
            check_total(found, child, "selector")
        except RolloutTooLarge as exc:
            return refused(exc)
    record, created = await services().rollouts.create(spec, may_target=who.may_target)
    name = "plan_id" if spec.kind is RolloutKind.PLAN else "rollout_id"
    if not created:
        return {name: record.spec.id, "status": "exists", "state": record.state.value}, 200
    answer: dict[str, Any] = {name: record.spec.id, "status": "accepted"}
    answer["agents"] = sorted(cluster.agent_id for cluster in record.clusters)
    if spec.kind is RolloutKind.APPLY:
        answer["waves"] = waves(record)
    return answer, 202


def waves(record: RolloutRecord) -> list[list[str]]:
    """The agents of each wave, sorted."""
    out: list[list[str]] = [[] for _ in range(waves_of(record))]
    for cluster in record.clusters:
        out[cluster.wave].append(cluster.agent_id)
    return [sorted(agents) for agents in out]


@routes.post("/events/batch")
@needs(Role.SUBMIT, kept=True)
@kept_view
async def submit_batch() -> Answer:
    """Many events in one request and one durable write: ``{"events": [event, ...]}``.

    Each event is checked and stored on its own terms: ``results[i]`` says what became of
    ``events[i]`` (accepted, exists, or the error a single POST would have given), and one bad
    event loses none of the others. 202 when every event was accepted (or existed), 207 when
    some were refused. But an event for an agent the token may not submit for refuses the whole
    batch (403), and nothing of it is stored: that is the caller's mistake about who they are,
    not one event's.
    """
    who = caller()
    items = _batch_items(await json_body("invalid_batch", "events"))
    forbidden = [agent for agent in _targets(items) if not who.may_target(agent)]
    if forbidden:
        raise Refused(
            403,
            f"{who.reach('submit events for')}; not {listing(forbidden)}: nothing of the"
            " batch was stored",
            caller=who,
            agent=forbidden[0],
        )
    outcomes = await _checked(items, who.created_by)
    valid = [(i, event) for i, event in enumerate(outcomes) if isinstance(event, Event)]
    results = [_refusal(o) if isinstance(o, InvalidEvent) else {} for o in outcomes]
    intake = services().intake
    stored = await intake.accept_many([e for _, e in valid], who.token_id) if valid else []
    if stored and all(isinstance(kept, TokenRevoked) for kept in stored):
        raise await revoked_refusal()
    if stored:
        token_checked()
    await _refuse_revoked_during(who, stored)
    known = {agent: await intake.agent_known(agent) for agent in {e.target_agent for _, e in valid}}
    for (index, event), kept in zip(valid, stored, strict=True):
        if isinstance(kept, EventConflict):
            results[index] = {"error": "conflict", "message": str(kept), "field": "id"}
            continue
        if isinstance(kept, TokenRevoked):  # revoked while the batch was stored (Redis)
            results[index] = {"error": "unauthorized", "message": _REVOKED_DURING}
            continue
        record, created = kept
        results[index] = {
            "event_id": record.event.id,
            "status": "accepted" if created else "exists",
            "agent_known": known[event.target_agent],
        }
    refused = sum(1 for result in results if "error" in result)
    answer = {"results": results, "accepted": len(results) - refused, "refused": refused}
    return answer, 207 if refused else 202


_REVOKED_DURING = "the bearer token was revoked while the batch was stored: not stored"


async def _refuse_revoked_during(who: Caller, stored: list[Any]) -> None:
    """The events of a batch not stored because its token was revoked while it was (Redis
    writes a batch event by event): one refusal in the audit log for them all."""
    left = sum(1 for kept in stored if isinstance(kept, TokenRevoked))
    if left:
        message = f"{left} of the batch's events not stored: the bearer token was revoked"
        await record_refusal(Refused(401, message, caller=who))


def _batch_items(body: Any) -> list[Any]:
    items = body.get("events") if isinstance(body, dict) else None
    if not isinstance(items, list) or set(body) - {"events"}:
        raise _BatchRefused(400, 'the body must be {"events": [...]}')
    if not 1 <= len(items) <= MAX_BATCH:
        raise _BatchRefused(413 if items else 400, f"a batch holds 1 to {MAX_BATCH} events")
    return items


class _BatchRefused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@routes.errorhandler(_BatchRefused)
async def batch_refused(exc: _BatchRefused) -> Answer:
    return error(exc.status, "invalid_batch", exc.message, field="events")
