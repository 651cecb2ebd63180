"""The control plane's HTTP API (quart-trio). Routes only; serving is in :mod:`.http`.

Every answer is JSON, errors included: ``{"error": CODE, "message": TEXT}`` plus ``field`` when a
submitted field is at fault.

Every endpoint declares what it needs (:mod:`.auth`): ``gate.open`` (no token), or the least
role of a token. A ``read`` or ``submit`` token sees only the events and agents its patterns
match; it may submit only for those agents.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal, overload

import trio
from quart import g, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from transporter import __version__
from transporter.cp.auth import Caller, Gate, Refused, listing
from transporter.cp.dispatch import Hub
from transporter.cp.jsonbody import use_strict_json
from transporter.cp.openapi import openapi_document
from transporter.cp.shown import EventViews
from transporter.protocol import codec
from transporter.protocol.model import AgentRecord, AgentStatus, Event, EventRecord, EventState
from transporter.protocol.submission import (
    MAX_MANIFEST_BYTES,
    EventTooLarge,
    InvalidEvent,
    parse_submission,
)
from transporter.protocol.tokens import Role
from transporter.store.base import EventConflict, InvalidCursor, Page, StoreUnavailable

MAX_WAIT = 60.0
"""Longest ``?wait=`` a request may hold ``GET /events/{id}``."""
MAX_LIMIT = 500
INLINE_CHECK_BYTES = 64 * 1024
"""Requests smaller than this are validated on the event loop; larger ones in a thread."""
MAX_BATCH = 1000
"""Events in one ``POST /events/batch``."""
SCAN_PAGE = 500
SCAN_PAGES = 10
"""``GET /events`` for a token that sees only some agents reads the store's pages of
:data:`SCAN_PAGE` events, at most :data:`SCAN_PAGES` of them, keeping those the token may see:
an answer may then hold fewer items than ``limit`` and still give a ``cursor`` to go on from."""


def _error(status: int, code: str, message: str, **extra: Any) -> tuple[dict[str, Any], int]:
    return {"error": code, "message": message, **extra}, status


class BadQuery(ValueError):
    pass


class BadBody(ValueError):
    """A request whose body (or its framing) cannot be read as the API's: answered 400, and
    the connection closed (what else it carries cannot be trusted to line up)."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


async def _json_body(code: str, field: str) -> Any:
    """The request's body as strict JSON; :class:`BadBody` saying why it is not."""
    body = await request.get_json(force=True, silent=True)
    if body is None:
        problem = getattr(request, "json_problem", "not JSON")
        raise BadBody(code, f"the body is {problem}", field)
    return body


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    text = request.args.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadQuery(f"{name} must be a whole number") from None
    if not low <= value <= high:
        raise BadQuery(f"{name} must be between {low} and {high}")
    return value


def _float_arg(name: str, default: float, low: float, high: float) -> float:
    text = request.args.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise BadQuery(f"{name} must be a number") from None
    if not low <= value <= high:
        raise BadQuery(f"{name} must be between {low} and {high}")
    return value


def _agent_view(record: AgentRecord, hub: Hub) -> dict[str, Any]:
    """The stored record, with this process's live view of a connection it holds."""
    data: dict[str, Any] = codec.unstructure(record)
    live = hub.registry.get(record.info.id)
    if live is not None:
        data["status"] = live.status.value
        data["last_heartbeat"] = live.last_heartbeat
        data["connected_since"] = live.connected_since
    elif record.status is not AgentStatus.DISCONNECTED and not hub.shared_store:
        # With the embedded store this process is the only one agents connect to.
        data["status"] = AgentStatus.DISCONNECTED.value
    return data


def _new_id() -> str:
    return str(uuid.uuid4())


def _caller() -> Caller:
    """Who makes the current request (set before every request, see ``authenticate``)."""
    caller = g.get("caller")
    if not isinstance(caller, Caller):  # cannot happen: every request passes the gate first
        raise RuntimeError("no caller for this request")
    return caller


def _targets(items: list[Any]) -> list[str]:
    """The ``target_agent`` of each submission that names one (valid or not: it is checked
    later, with the rest of the event)."""
    return [
        item["target_agent"]
        for item in items
        if isinstance(item, dict) and isinstance(item.get("target_agent"), str)
    ]


def create_app(hub: Hub, *, auth: bool = True) -> QuartTrio:
    """The API on ``hub``; ``auth=False`` (``--insecure-no-auth``): no token needed."""
    app = QuartTrio("transporter.cp")
    gate = Gate(hub.store, enabled=auth)
    app.extensions["transporter.gate"] = gate
    app.config["JSON_SORT_KEYS"] = False
    app.config["MAX_CONTENT_LENGTH"] = 2 * MAX_MANIFEST_BYTES
    views = EventViews()  # events are answered with their Secrets' values redacted

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> tuple[dict[str, Any], int, list[tuple[str, str]]]:
        name = (exc.name or "error").lower().replace(" ", "_")
        body, status = _error(exc.code or 500, name, exc.description or name)
        # The exception's own headers (Allow on a 405), but not its HTML content type.
        headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
        return body, status, headers

    @app.errorhandler(StoreUnavailable)
    async def store_down(exc: StoreUnavailable) -> tuple[dict[str, Any], int]:
        return _error(503, "store_unavailable", str(exc))

    @app.errorhandler(InvalidCursor)
    async def bad_cursor(exc: InvalidCursor) -> tuple[dict[str, Any], int]:
        return _error(400, "invalid_query", str(exc))

    @app.errorhandler(BadQuery)
    async def bad_query(exc: BadQuery) -> tuple[dict[str, Any], int]:
        return _error(400, "invalid_query", str(exc))

    @app.errorhandler(BadBody)
    async def bad_body(exc: BadBody) -> tuple[dict[str, Any], int, list[tuple[str, str]]]:
        extra = {"field": exc.field} if exc.field else {}
        body, status = _error(400, exc.code, exc.message, **extra)
        return body, status, [("Connection", "close")]

    @app.errorhandler(Refused)
    async def not_allowed(exc: Refused) -> tuple[dict[str, Any], int, list[tuple[str, str]]]:
        await gate.record_refusal(
            exc, method=request.method, path=request.path, remote=request.remote_addr
        )
        body, status = _error(exc.status, exc.code, exc.message)
        return body, status, exc.headers

    @app.before_request
    async def framing() -> None:
        """Both lengths at once is how request smuggling starts: a proxy in front may frame
        the body by the other one."""
        if "Content-Length" in request.headers and "Transfer-Encoding" in request.headers:
            raise BadBody(
                "bad_request", "a request may not carry both Content-Length and Transfer-Encoding"
            )

    @app.before_request
    async def authenticate() -> None:
        g.caller = await gate.admit(request.endpoint, request.headers.get("Authorization"))

    # Bodies are read as strict JSON (cp/jsonbody.py); the API describes itself (cp/openapi.py).
    use_strict_json(app)
    document = openapi_document(
        version=__version__, max_wait=MAX_WAIT, max_limit=MAX_LIMIT, max_batch=MAX_BATCH
    )

    @app.get("/openapi.json")
    @gate.open
    async def openapi() -> dict[str, Any]:
        """This API in OpenAPI 3.1."""
        return document

    @app.get("/healthz")
    @gate.open
    async def healthz() -> dict[str, Any]:
        """Liveness: the process serves requests. Says nothing about the store."""
        return {"status": "ok", "version": __version__}

    @app.get("/readyz")
    @gate.open
    async def readyz() -> tuple[dict[str, Any], int]:
        """Readiness: the store answers."""
        await hub.store.ping()
        return {"status": "ready"}, 200

    checking = trio.CapacityLimiter(2)

    @overload
    async def checked(bodies: list[Any], now: float, by: str | None) -> list[Event]: ...
    @overload
    async def checked(
        bodies: list[Any], now: float, by: str | None, *, each: Literal[True]
    ) -> list[Event | InvalidEvent]: ...
    async def checked(
        bodies: list[Any], now: float, by: str | None, *, each: bool = False
    ) -> list[Event] | list[Event | InvalidEvent]:
        """Validate submissions (``each``: an error in its item's place, else raised).

        Checking YAML is CPU work: a large request is checked in a worker thread, so that one
        big event cannot hold up every other request; a small one inline, where a thread hop
        would cost more than the check.
        """

        def check() -> list[Event] | list[Event | InvalidEvent]:
            if not each:
                return [
                    parse_submission(body, now=now, new_id=_new_id, created_by=by)
                    for body in bodies
                ]
            out: list[Event | InvalidEvent] = []
            for body in bodies:
                try:
                    out.append(parse_submission(body, now=now, new_id=_new_id, created_by=by))
                except InvalidEvent as exc:
                    out.append(exc)
            return out

        if (request.content_length or 0) < INLINE_CHECK_BYTES:
            return check()
        return await trio.to_thread.run_sync(check, limiter=checking)

    @app.post("/events")
    @gate.needs(Role.SUBMIT)
    async def submit() -> tuple[dict[str, Any], int]:
        """An event is created_by its token; a token may submit only for its agents (403)."""
        caller = _caller()
        body = await _json_body("invalid_event", "body")
        for agent in _targets([body]):
            caller.require_target(agent, "submit events for")
        try:
            (event,) = await checked([body], time.time(), caller.created_by)
        except EventTooLarge as exc:
            return _error(413, "event_too_large", exc.problem, field=exc.field)
        except InvalidEvent as exc:
            return _error(400, "invalid_event", exc.problem, field=exc.field)
        try:
            record, created = await hub.accept(event)
        except EventConflict as exc:
            return _error(409, "conflict", str(exc), field="id")
        known = await hub.agent_known(event.target_agent)
        answer = {"event_id": record.event.id, "agent_known": known}
        if created:
            return {**answer, "status": "accepted"}, 202
        return {**answer, "status": "exists", "state": record.state.value}, 200

    @app.post("/events/batch")
    @gate.needs(Role.SUBMIT)
    async def submit_batch() -> tuple[dict[str, Any], int]:
        """Many events in one request and one durable write: ``{"events": [event, ...]}``.

        Each event is validated and stored on its own terms: ``results[i]`` says what became of
        ``events[i]`` (accepted, exists, or the error a single POST would have given), and one
        bad event loses none of the others. 202 when every event was accepted (or existed),
        207 when some were refused. But an event for an agent the token may not submit for
        refuses the whole batch (403), and nothing of it is stored: that is the caller's
        mistake about who they are, not one event's.
        """
        caller = _caller()
        body = await _json_body("invalid_batch", "events")
        items = body.get("events") if isinstance(body, dict) else None
        if not isinstance(items, list) or set(body) - {"events"}:
            return _error(
                400, "invalid_batch", 'the body must be {"events": [...]}', field="events"
            )
        if not 1 <= len(items) <= MAX_BATCH:
            return _error(
                413 if items else 400,
                "invalid_batch",
                f"a batch holds 1 to {MAX_BATCH} events",
                field="events",
            )
        forbidden = [agent for agent in _targets(items) if not caller.may_target(agent)]
        if forbidden:
            raise Refused(
                403,
                f"{caller.reach('submit events for')}; not {listing(forbidden)}: nothing of the"
                " batch was stored",
                caller=caller,
                agent=forbidden[0],
            )
        results: list[dict[str, Any]] = [{} for _ in items]
        valid: list[tuple[int, Event]] = []
        outcomes = await checked(items, time.time(), caller.created_by, each=True)
        for index, outcome in enumerate(outcomes):
            if isinstance(outcome, InvalidEvent):
                kind = "event_too_large" if isinstance(outcome, EventTooLarge) else "invalid_event"
                results[index] = {"error": kind, "message": outcome.problem, "field": outcome.field}
            else:
                valid.append((index, outcome))
        stored = await hub.accept_many([event for _, event in valid]) if valid else []
        for (index, event), kept in zip(valid, stored, strict=True):
            if isinstance(kept, EventConflict):
                results[index] = {"error": "conflict", "message": str(kept), "field": "id"}
                continue
            record, created = kept
            results[index] = {
                "event_id": record.event.id,
                "status": "accepted" if created else "exists",
                "agent_known": await hub.agent_known(event.target_agent),
            }
        refused = sum(1 for result in results if "error" in result)
        answer = {"results": results, "accepted": len(results) - refused, "refused": refused}
        return answer, 207 if refused else 202

    @app.get("/events/<event_id>")
    @gate.needs(Role.READ)
    async def get_event(event_id: str) -> tuple[dict[str, Any], int]:
        """One event. ``?wait=S&since=N``: hold the answer up to S seconds until the timeline
        has more than N entries (how ``produce --wait`` follows phases without polling).

        An event for an agent outside the token's patterns is refused (403) without naming the
        agent: the caller has its id already, and learns why they cannot see it."""
        caller = _caller()
        wait = _float_arg("wait", 0.0, 0.0, MAX_WAIT)
        since = _int_arg("since", 0, 0, 1_000_000)
        deadline = time.monotonic() + wait
        record = await hub.store.get_event(event_id)
        while True:
            if record is None:
                return _error(404, "not_found", f"no event {event_id!r}")
            if not caller.may_target(record.event.target_agent):
                raise Refused(
                    403,
                    f"event {event_id!r} is for an agent outside your token's reach:"
                    f" {caller.reach('read')}",
                    caller=caller,
                    agent=record.event.target_agent,
                    event_id=event_id,
                )
            left = deadline - time.monotonic()
            if len(record.timeline) > since or record.state.terminal or left <= 0:
                return await views.one(record), 200
            # Woken by this process's updates, with the record written; the cap covers other
            # replicas' writes, read from the store.
            written = None
            with trio.move_on_after(min(left, 1.0) if hub.shared_store else left):
                written = await hub.watch.wait(event_id)
            record = written or await hub.store.get_event(event_id)

    @app.get("/events")
    @gate.needs(Role.READ)
    async def list_events() -> tuple[dict[str, Any], int]:
        """Newest first. A token that sees only some agents gets only their events (and 403
        when it asks for another agent's)."""
        caller = _caller()
        state_text = request.args.get("state")
        state = None
        if state_text is not None:
            try:
                state = EventState(state_text)
            except ValueError:
                states = ", ".join(s.value for s in EventState)
                return _error(400, "invalid_query", f"state must be one of {states}")
        agent = request.args.get("agent") or None
        limit = _int_arg("limit", 50, 1, MAX_LIMIT)
        cursor = request.args.get("cursor") or None
        if agent is not None:
            caller.require_target(agent, "read")
        if agent is not None or caller.reaches_every_agent:
            page = await hub.store.list_events(agent=agent, state=state, limit=limit, cursor=cursor)
        else:
            page = await visible_events(caller, state, limit, cursor)
        return {"items": await views.many(page.items), "cursor": page.cursor}, 200

    async def visible_events(
        caller: Caller, state: EventState | None, limit: int, cursor: str | None
    ) -> Page[EventRecord]:
        """The events ``caller`` may see, newest first, from the store's pages (see
        :data:`SCAN_PAGE`); the cursor is the ``seq`` of the last event looked at."""
        items: list[EventRecord] = []
        for _ in range(SCAN_PAGES):
            page = await hub.store.list_events(state=state, limit=SCAN_PAGE, cursor=cursor)
            for index, record in enumerate(page.items):
                if caller.may_target(record.event.target_agent):
                    items.append(record)
                    if len(items) == limit:
                        more = index + 1 < len(page.items) or page.cursor is not None
                        return Page(items, str(record.seq) if more else None)
            if page.cursor is None:
                return Page(items, None)
            cursor = page.cursor
        return Page(items, cursor)

    @app.get("/agents")
    @gate.needs(Role.READ)
    async def list_agents() -> dict[str, Any]:
        """Every agent that ever registered; for a token that sees only some, those."""
        caller = _caller()
        records = [r for r in await hub.store.list_agents() if caller.may_target(r.info.id)]
        return {"items": [_agent_view(r, hub) for r in records]}

    @app.get("/agents/<agent_id>")
    @gate.needs(Role.READ)
    async def get_agent(agent_id: str) -> tuple[dict[str, Any], int]:
        _caller().require_target(agent_id, "read")
        record = await hub.store.get_agent(agent_id)
        if record is None:
            return _error(404, "not_found", f"no agent {agent_id!r} has ever registered")
        return _agent_view(record, hub), 200

    @app.get("/audit")
    @gate.needs(Role.ADMIN)
    async def audit() -> tuple[dict[str, Any], int]:
        page = await hub.store.list_audit(
            limit=_int_arg("limit", 100, 1, MAX_LIMIT),
            cursor=request.args.get("cursor") or None,
        )
        return {"items": codec.unstructure(page.items), "cursor": page.cursor}, 200

    return app
