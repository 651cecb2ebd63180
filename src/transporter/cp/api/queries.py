"""Reading a request's query and body, strictly: a value out of bounds is a 400 that says so."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from quart import current_app, g, request

from transporter.cp.api.access import GATE, Caller, Gate, Refused
from transporter.cp.api.errors import BadBody, BadQuery


def int_arg(name: str, default: int, low: int, high: int) -> int:
    return _number_arg(name, default, low, high, int, "a whole number")


def float_arg(name: str, default: float, low: float, high: float) -> float:
    return _number_arg(name, default, low, high, float, "a number")


def _number_arg[N: (int, float)](
    name: str, default: N, low: N, high: N, kind: Callable[[str], N], what: str
) -> N:
    text = request.args.get(name)
    if text is None:
        return default
    try:
        value = kind(text)
    except ValueError:
        raise BadQuery(f"{name} must be {what}") from None
    if not low <= value <= high:
        raise BadQuery(f"{name} must be between {low} and {high}")
    return value


def bool_arg(name: str, default: bool) -> bool:
    text = request.args.get(name)
    if text is None:
        return default
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise BadQuery(f"{name} must be true or false")


async def json_body(code: str, field: str) -> Any:
    """The request's body as strict JSON; :class:`BadBody` saying why it is not."""
    body = await request.get_json(force=True, silent=True)
    if body is None:
        problem = getattr(request, "json_problem", "not JSON")
        raise BadBody(code, f"the body is {problem}", field)
    return body


def caller() -> Caller:
    """Who makes the current request (set before every request by the gate)."""
    found = g.get("caller")
    if not isinstance(found, Caller):  # cannot happen: every request passes the gate first
        raise RuntimeError("no caller for this request")
    return found


def _gate() -> Gate:
    found = current_app.extensions.get(GATE)
    if not isinstance(found, Gate):  # cannot happen: create_app sets it
        raise RuntimeError("no gate for this app")
    return found


async def fresh_caller() -> Caller:
    """Who makes the current request, by a read of the token's record for this request (for an
    endpoint declared ``kept`` that does what its store write does not check)."""
    authorization = request.headers.get("Authorization")
    return await _gate().admit(request.endpoint, authorization, fresh=True)


async def revoked_refusal() -> Refused:
    """The refusal of the current request, whose store write found its token revoked."""
    return await _gate().refusal(request.headers.get("Authorization"))
