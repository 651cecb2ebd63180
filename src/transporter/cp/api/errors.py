"""Every answer is JSON, refusals included: ``{"error": CODE, "message": TEXT}`` plus ``field``
when a submitted field is at fault. The refusals a route raises, and their handlers."""

from __future__ import annotations

from typing import Any

from quart import g, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from transporter.cp.api.access import OPEN, Gate, Refused, listing
from transporter.cp.api.echo import quoted
from transporter.cp.rollout import errors as rollout
from transporter.store.base import InvalidCursor, RolloutConflict, StoreUnavailable

Answer = tuple[dict[str, Any], int]


def error(status: int, code: str, message: str, **extra: Any) -> Answer:
    return {"error": code, "message": message, **extra}, status


class BadQuery(ValueError):
    """A query parameter that cannot be used (400 ``invalid_query``)."""


class BadBody(ValueError):
    """A request whose body (or its framing) cannot be read as the API's: answered 400, and
    the connection closed (what else it carries cannot be trusted to line up)."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


_ROLLOUT_ERRORS: dict[type[rollout.RolloutError], tuple[int, str]] = {
    rollout.NoMatch: (400, "no_match"),
    rollout.TooMany: (400, "too_many_agents"),
    rollout.UnknownRollout: (404, "not_found"),
    rollout.UnknownEvent: (404, "not_found"),
    rollout.NotAPlan: (404, "not_found"),
    rollout.NothingToApprove: (409, "nothing_to_approve"),
    rollout.NotCancellable: (409, "not_cancellable"),
    rollout.PlanNotReady: (409, "plan_not_ready"),
    rollout.PlanExpired: (410, "plan_expired"),
}
"""How the rollout engine's refusals are answered (:mod:`transporter.cp.rollout.errors`)."""


def rollout_refusal(exc: rollout.RolloutError) -> Answer:
    if isinstance(exc, rollout.UnknownRollout):  # the id as the caller sent it: cut
        return error(404, "not_found", f"no rollout {quoted(exc.rollout_id)}")
    if isinstance(exc, rollout.UnknownEvent):
        return error(404, "not_found", f"no event {quoted(exc.event_id)}")
    for kind, (status, code) in _ROLLOUT_ERRORS.items():
        if isinstance(exc, kind):
            return error(status, code, str(exc))
    return error(409, "conflict", str(exc))


def not_covered(exc: rollout.NotCovered) -> Refused:
    """A rollout's agents that the caller's token does not reach: a 403 like any other (and
    audited as one), naming them."""
    who = g.get("caller") or OPEN
    if not exc.agents:  # a selector's rollout that may take agents beyond the caller's reach
        return Refused(403, f"{exc}; {who.reach('target')}: nothing was done", caller=who)
    return Refused(
        403,
        f"{who.reach('target')}; not {listing(exc.agents)}: nothing was done",
        caller=who,
        agent=exc.agents[0] if exc.agents else "",
    )


class BadRequest(ValueError):
    """400 ``invalid_request``: a field of a request's body (other than a submission's)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class NotFound(LookupError):
    """404 ``not_found``; the message names what is missing."""


type WithHeaders = tuple[dict[str, Any], int, list[tuple[str, str]]]


def http_error(exc: HTTPException) -> WithHeaders:
    """The answer to werkzeug's ``exc`` (a 408, a 500, ...)."""
    name = (exc.name or "error").lower().replace(" ", "_")
    body, status = error(exc.code or 500, name, exc.description or name)
    # The exception's own headers (Allow on a 405), but not its HTML content type.
    headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
    return body, status, headers


def store_down(exc: StoreUnavailable) -> Answer:
    return error(503, "store_unavailable", str(exc))


def refusal(exc: Refused) -> WithHeaders:
    """The answer to a refusal (recorded in the audit log by the caller)."""
    body, status = error(exc.status, exc.code, exc.message)
    return body, status, exc.headers


def register(app: QuartTrio, gate: Gate) -> None:
    """The app's error handlers (the direct route, cp/api/fast_submit.py, answers with the same
    functions)."""

    @app.errorhandler(HTTPException)
    async def on_http_error(exc: HTTPException) -> WithHeaders:
        return http_error(exc)

    @app.errorhandler(StoreUnavailable)
    async def on_store_down(exc: StoreUnavailable) -> Answer:
        return store_down(exc)

    @app.errorhandler(InvalidCursor)
    async def bad_cursor(exc: InvalidCursor) -> Answer:
        return error(400, "invalid_query", str(exc))

    @app.errorhandler(BadQuery)
    async def bad_query(exc: BadQuery) -> Answer:
        return error(400, "invalid_query", str(exc))

    @app.errorhandler(BadBody)
    async def bad_body(exc: BadBody) -> WithHeaders:
        extra = {"field": exc.field} if exc.field else {}
        body, status = error(400, exc.code, exc.message, **extra)
        return body, status, [("Connection", "close")]

    @app.errorhandler(Refused)
    async def not_allowed(exc: Refused) -> WithHeaders:
        await gate.record_refusal(
            exc, method=request.method, path=request.path, remote=request.remote_addr
        )
        return refusal(exc)

    @app.errorhandler(rollout.RolloutError)
    async def rollout_refused(
        exc: rollout.RolloutError,
    ) -> Answer | WithHeaders:
        if isinstance(exc, rollout.NotCovered):
            return await not_allowed(not_covered(exc))
        return rollout_refusal(exc)

    @app.errorhandler(BadRequest)
    async def bad_request(exc: BadRequest) -> Answer:
        return error(400, "invalid_request", exc.problem, field=exc.field)

    @app.errorhandler(NotFound)
    async def not_found(exc: NotFound) -> Answer:
        return error(404, "not_found", str(exc))

    @app.errorhandler(RolloutConflict)
    async def rollout_conflict(exc: RolloutConflict) -> Answer:
        return error(409, "conflict", str(exc), field="id")
