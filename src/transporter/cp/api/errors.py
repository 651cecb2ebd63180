"""Every answer is JSON, refusals included: ``{"error": CODE, "message": TEXT}`` plus ``field``
when a submitted field is at fault. The refusals a route raises, and their handlers."""

from __future__ import annotations

from typing import Any

from quart import request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from transporter.cp.api.access import Gate, Refused
from transporter.store.base import InvalidCursor, StoreUnavailable

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


def register(app: QuartTrio, gate: Gate) -> None:
    """The app's error handlers."""

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> tuple[dict[str, Any], int, list[tuple[str, str]]]:
        name = (exc.name or "error").lower().replace(" ", "_")
        body, status = error(exc.code or 500, name, exc.description or name)
        # The exception's own headers (Allow on a 405), but not its HTML content type.
        headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
        return body, status, headers

    @app.errorhandler(StoreUnavailable)
    async def store_down(exc: StoreUnavailable) -> Answer:
        return error(503, "store_unavailable", str(exc))

    @app.errorhandler(InvalidCursor)
    async def bad_cursor(exc: InvalidCursor) -> Answer:
        return error(400, "invalid_query", str(exc))

    @app.errorhandler(BadQuery)
    async def bad_query(exc: BadQuery) -> Answer:
        return error(400, "invalid_query", str(exc))

    @app.errorhandler(BadBody)
    async def bad_body(exc: BadBody) -> tuple[dict[str, Any], int, list[tuple[str, str]]]:
        extra = {"field": exc.field} if exc.field else {}
        body, status = error(400, exc.code, exc.message, **extra)
        return body, status, [("Connection", "close")]

    @app.errorhandler(Refused)
    async def not_allowed(exc: Refused) -> tuple[dict[str, Any], int, list[tuple[str, str]]]:
        await gate.record_refusal(
            exc, method=request.method, path=request.path, remote=request.remote_addr
        )
        body, status = error(exc.status, exc.code, exc.message)
        return body, status, exc.headers
