"""Submitting events: ``POST /events`` and ``POST /events/batch``.

An event is ``created_by`` its token, and a token may submit only for the agents its patterns
match (403). Checking YAML is CPU work: a large request is checked in a worker thread, so that
one big event cannot hold up every other request; a small one inline, where a thread hop would
cost more than the check.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import trio
from quart import Blueprint, request

from transporter.cp.api.access import Refused, listing, needs
from transporter.cp.api.errors import Answer, error
from transporter.cp.api.queries import caller, json_body
from transporter.cp.api.services import services
from transporter.protocol.model import Event
from transporter.protocol.submission import EventTooLarge, InvalidEvent, parse_submission
from transporter.security.tokens import Role
from transporter.store.base import EventConflict

routes = Blueprint("submit", __name__)

INLINE_CHECK_BYTES = 64 * 1024
"""Requests smaller than this are checked on the event loop; larger ones in a thread."""
MAX_BATCH = 1000
"""Events in one ``POST /events/batch``."""


def _new_id() -> str:
    return str(uuid.uuid4())


def _refusal(problem: InvalidEvent) -> dict[str, Any]:
    kind = "event_too_large" if isinstance(problem, EventTooLarge) else "invalid_event"
    return {"error": kind, "message": problem.problem, "field": problem.field}


async def _checked(bodies: list[Any], by: str | None) -> list[Event | InvalidEvent]:
    """Each submission as an event, or why it is not one, in its place."""
    now = time.time()

    def check() -> list[Event | InvalidEvent]:
        out: list[Event | InvalidEvent] = []
        for body in bodies:
            try:
                out.append(parse_submission(body, now=now, new_id=_new_id, created_by=by))
            except InvalidEvent as exc:
                out.append(exc)
        return out

    if (request.content_length or 0) < INLINE_CHECK_BYTES:
        return check()
    return await trio.to_thread.run_sync(check, limiter=services().checking)


def _targets(items: list[Any]) -> list[str]:
    """The ``target_agent`` of each submission that names one (valid or not: it is checked
    later, with the rest of the event)."""
    return [
        item["target_agent"]
        for item in items
        if isinstance(item, dict) and isinstance(item.get("target_agent"), str)
    ]


@routes.post("/events")
@needs(Role.SUBMIT)
async def submit() -> Answer:
    """One event: 202 accepted, 200 when an event of that id exists already, 409 when it
    exists with other contents."""
    who = caller()
    body = await json_body("invalid_event", "body")
    for agent in _targets([body]):
        who.require_target(agent, "submit events for")
    (event,) = await _checked([body], who.created_by)
    if isinstance(event, InvalidEvent):
        refusal = _refusal(event)
        return refusal, 413 if refusal["error"] == "event_too_large" else 400
    try:
        record, created = await services().intake.accept(event)
    except EventConflict as exc:
        return error(409, "conflict", str(exc), field="id")
    known = await services().intake.agent_known(event.target_agent)
    answer = {"event_id": record.event.id, "agent_known": known}
    if created:
        return {**answer, "status": "accepted"}, 202
    return {**answer, "status": "exists", "state": record.state.value}, 200


@routes.post("/events/batch")
@needs(Role.SUBMIT)
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
    stored = await intake.accept_many([event for _, event in valid]) if valid else []
    known = {agent: await intake.agent_known(agent) for agent in {e.target_agent for _, e in valid}}
    for (index, event), kept in zip(valid, stored, strict=True):
        if isinstance(kept, EventConflict):
            results[index] = {"error": "conflict", "message": str(kept), "field": "id"}
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
