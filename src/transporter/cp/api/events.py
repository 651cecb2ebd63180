"""Reading events: ``GET /events/{id}`` (waiting for it to change, if asked) and ``GET /events``.

A ``read`` or ``submit`` token sees only the events of the agents its patterns match.
"""

from __future__ import annotations

import time

import trio
from quart import Blueprint, request

from transporter.cp.api.access import Caller, needs
from transporter.cp.api.echo import quoted
from transporter.cp.api.errors import Answer, BadQuery, error
from transporter.cp.api.paging import visible_page
from transporter.cp.api.queries import bool_arg, caller, float_arg, int_arg
from transporter.cp.api.services import services
from transporter.cp.openapi.bounds import EVENTS_PAGE, MAX_SINCE
from transporter.cp.watch import latest
from transporter.protocol.model import EventRecord, EventState
from transporter.security.tokens import Role
from transporter.store.base import Page

routes = Blueprint("events", __name__)

MAX_WAIT = 60.0
"""Longest ``?wait=`` a request may hold ``GET /events/{id}``."""
MAX_LIMIT = 500
SCAN_PAGE = 500
SCAN_PAGES = 10
"""``GET /events`` for a token that sees only some agents reads the store's pages of
:data:`SCAN_PAGE` events, at most :data:`SCAN_PAGES` of them, keeping those the token may see:
an answer may then hold fewer items than ``limit`` and still give a ``cursor`` to go on from."""


@routes.get("/events/<event_id>")
@needs(Role.READ)
async def get_event(event_id: str) -> Answer:
    """One event. ``?wait=S&since=N``: hold the answer up to S seconds until the timeline has
    more than N entries (how ``produce --wait`` follows phases without polling). A waiting
    request is answered without the manifests unless ``manifests=true``: it follows progress.

    An event for an agent outside the token's reach is refused (403) without naming the agent:
    the caller has its id already, and learns why they cannot see it."""
    who = caller()
    wait = float_arg("wait", 0.0, 0.0, MAX_WAIT)
    since = int_arg("since", 0, 0, MAX_SINCE)
    with_manifests = bool_arg("manifests", wait == 0)
    deadline = time.monotonic() + wait
    found = services()
    # Subscribed before the first read, so that no change between a read and the wait is lost
    # (and woken with the newest record written, whatever the order of the writers' notices).
    with found.watch.watching(event_id) as subscription:
        record = await found.store.get_event(event_id)
        while True:
            if record is None:
                return error(404, "not_found", f"no event {quoted(event_id)}")
            who.require_event(record, "read")
            left = deadline - time.monotonic()
            if len(record.timeline) > since or record.state.terminal or left <= 0:
                return await found.views.one(record, manifests=with_manifests), 200
            written = None
            # Other replicas' writes wake it too (their hints, cp/replicas.py); with a shared
            # store it reads again now and then besides, in case a hint was missed.
            look = min(left, found.replica_look) if found.shared_store else left
            with trio.move_on_after(look):
                written = await subscription.next()
            # A notice may come after the request read a later record: the later one stands.
            record = latest(record, written) or await found.store.get_event(event_id)


@routes.get("/events")
@needs(Role.READ)
async def list_events() -> Answer:
    """Newest first. A token that sees only some agents gets only their events (and 403 when
    it asks for another agent's)."""
    who = caller()
    state = _state_arg()
    agent = request.args.get("agent") or None
    limit = int_arg("limit", EVENTS_PAGE, 1, MAX_LIMIT)
    cursor = request.args.get("cursor") or None
    if agent is not None:
        who.require_target(agent, "read")
    store = services().store
    if agent is not None or who.reaches_every_agent:
        page = await store.list_events(agent=agent, state=state, limit=limit, cursor=cursor)
    else:
        page = await _visible_events(who, state, limit, cursor)
    return {"items": await services().views.many(page.items), "cursor": page.cursor}, 200


def _state_arg() -> EventState | None:
    text = request.args.get("state")
    if text is None:
        return None
    try:
        return EventState(text)
    except ValueError:
        states = ", ".join(s.value for s in EventState)
        raise BadQuery(f"state must be one of {states}") from None


async def _visible_events(
    who: Caller, state: EventState | None, limit: int, cursor: str | None
) -> Page[EventRecord]:
    """The events ``who`` may see, newest first, from the store's pages (see
    :data:`SCAN_PAGE`); the cursor is the ``seq`` of the last event looked at."""
    store = services().store
    return await visible_page(
        lambda after: store.list_events(state=state, limit=SCAN_PAGE, cursor=after),
        lambda record: who.may_target(record.event.target_agent),
        limit=limit,
        cursor=cursor,
        pages=SCAN_PAGES,
    )
