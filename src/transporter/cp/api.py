"""The control plane's HTTP API (quart-trio). Routes only; serving is in :mod:`.http`.

Every answer is JSON, errors included: ``{"error": CODE, "message": TEXT}`` plus ``field`` when a
submitted field is at fault.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal, overload

import trio
from quart import request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from transporter import __version__
from transporter.cp.dispatch import Hub
from transporter.cp.jsonbody import use_strict_json
from transporter.cp.openapi import openapi_document
from transporter.cp.shown import EventViews
from transporter.protocol import codec
from transporter.protocol.model import AgentRecord, AgentStatus, Event, EventState
from transporter.protocol.submission import (
    MAX_MANIFEST_BYTES,
    EventTooLarge,
    InvalidEvent,
    parse_submission,
)
from transporter.store.base import EventConflict, InvalidCursor, StoreUnavailable

MAX_WAIT = 60.0
"""Longest ``?wait=`` a request may hold ``GET /events/{id}``."""
MAX_LIMIT = 500
INLINE_CHECK_BYTES = 64 * 1024
"""Requests smaller than this are validated on the event loop; larger ones in a thread."""
MAX_BATCH = 1000
"""Events in one ``POST /events/batch``."""


def _error(status: int, code: str, message: str, **extra: Any) -> tuple[dict[str, Any], int]:
    return {"error": code, "message": message, **extra}, status


class BadQuery(ValueError):
    pass


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


def create_app(hub: Hub) -> QuartTrio:
    app = QuartTrio("transporter.cp")
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

    # Bodies are read as strict JSON (cp/jsonbody.py); the API describes itself (cp/openapi.py).
    use_strict_json(app)
    document = openapi_document(
        version=__version__, max_wait=MAX_WAIT, max_limit=MAX_LIMIT, max_batch=MAX_BATCH
    )

    @app.get("/openapi.json")
    async def openapi() -> dict[str, Any]:
        """This API in OpenAPI 3.1."""
        return document

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        """Liveness: the process serves requests. Says nothing about the store."""
        return {"status": "ok", "version": __version__}

    @app.get("/readyz")
    async def readyz() -> tuple[dict[str, Any], int]:
        """Readiness: the store answers."""
        await hub.store.ping()
        return {"status": "ready"}, 200

    checking = trio.CapacityLimiter(2)

    @overload
    async def checked(bodies: list[Any], now: float) -> list[Event]: ...
    @overload
    async def checked(
        bodies: list[Any], now: float, *, each: Literal[True]
    ) -> list[Event | InvalidEvent]: ...
    async def checked(
        bodies: list[Any], now: float, *, each: bool = False
    ) -> list[Event] | list[Event | InvalidEvent]:
        """Validate submissions (``each``: an error in its item's place, else raised).

        Checking YAML is CPU work: a large request is checked in a worker thread, so that one
        big event cannot hold up every other request; a small one inline, where a thread hop
        would cost more than the check.
        """

        def check() -> list[Event] | list[Event | InvalidEvent]:
            if not each:
                return [parse_submission(body, now=now, new_id=_new_id) for body in bodies]
            out: list[Event | InvalidEvent] = []
            for body in bodies:
                try:
                    out.append(parse_submission(body, now=now, new_id=_new_id))
                except InvalidEvent as exc:
                    out.append(exc)
            return out

        if (request.content_length or 0) < INLINE_CHECK_BYTES:
            return check()
        return await trio.to_thread.run_sync(check, limiter=checking)

    @app.post("/events")
    async def submit() -> tuple[dict[str, Any], int]:
        body = await request.get_json(force=True, silent=True)
        if body is None:
            return _error(400, "invalid_event", "the body is not JSON", field="body")
        try:
            (event,) = await checked([body], time.time())
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
    async def submit_batch() -> tuple[dict[str, Any], int]:
        """Many events in one request and one durable write: ``{"events": [event, ...]}``.

        Each event is validated and stored on its own terms: ``results[i]`` says what became of
        ``events[i]`` (accepted, exists, or the error a single POST would have given), and one
        bad event loses none of the others. 202 when every event was accepted (or existed),
        207 when some were refused.
        """
        body = await request.get_json(force=True, silent=True)
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
        results: list[dict[str, Any]] = [{} for _ in items]
        valid: list[tuple[int, Event]] = []
        for index, outcome in enumerate(await checked(items, time.time(), each=True)):
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
    async def get_event(event_id: str) -> tuple[dict[str, Any], int]:
        """One event. ``?wait=S&since=N``: hold the answer up to S seconds until the timeline
        has more than N entries (how ``produce --wait`` follows phases without polling)."""
        wait = _float_arg("wait", 0.0, 0.0, MAX_WAIT)
        since = _int_arg("since", 0, 0, 1_000_000)
        deadline = time.monotonic() + wait
        while True:
            record = await hub.store.get_event(event_id)
            if record is None:
                return _error(404, "not_found", f"no event {event_id!r}")
            left = deadline - time.monotonic()
            if len(record.timeline) > since or record.state.terminal or left <= 0:
                return await views.one(record), 200
            # Woken by this process's updates; the cap covers other replicas' writes.
            with trio.move_on_after(min(left, 1.0) if hub.shared_store else left):
                await hub.watch.wait(event_id)

    @app.get("/events")
    async def list_events() -> tuple[dict[str, Any], int]:
        state_text = request.args.get("state")
        state = None
        if state_text is not None:
            try:
                state = EventState(state_text)
            except ValueError:
                states = ", ".join(s.value for s in EventState)
                return _error(400, "invalid_query", f"state must be one of {states}")
        page = await hub.store.list_events(
            agent=request.args.get("agent") or None,
            state=state,
            limit=_int_arg("limit", 50, 1, MAX_LIMIT),
            cursor=request.args.get("cursor") or None,
        )
        return {"items": await views.many(page.items), "cursor": page.cursor}, 200

    @app.get("/agents")
    async def list_agents() -> dict[str, Any]:
        return {"items": [_agent_view(r, hub) for r in await hub.store.list_agents()]}

    @app.get("/agents/<agent_id>")
    async def get_agent(agent_id: str) -> tuple[dict[str, Any], int]:
        record = await hub.store.get_agent(agent_id)
        if record is None:
            return _error(404, "not_found", f"no agent {agent_id!r} has ever registered")
        return _agent_view(record, hub), 200

    @app.get("/audit")
    async def audit() -> tuple[dict[str, Any], int]:
        page = await hub.store.list_audit(
            limit=_int_arg("limit", 100, 1, MAX_LIMIT),
            cursor=request.args.get("cursor") or None,
        )
        return {"items": codec.unstructure(page.items), "cursor": page.cursor}, 200

    return app
