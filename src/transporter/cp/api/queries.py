"""Reading a request's query and body, strictly: a value out of bounds is a 400 that says so."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
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
    endpoint declared ``kept`` that does what its store write does not check, or answers
    without reaching it): :class:`Refused` when the token was revoked since it was kept."""
    authorization = request.headers.get("Authorization")
    return await _gate().admit(request.endpoint, authorization, fresh=True)


def token_checked() -> None:
    """Say that the current request's token was checked since it was admitted (by its store
    write, or read again): see :func:`kept_view`."""
    g.token_checked = True


def kept_view[**P, R](view: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """The view of an endpoint declared ``kept``: an answer (or a refusal) made without the
    store write that checks the token (:func:`token_checked` not called: a bad body, a target
    out of reach, a batch with nothing valid) is given only once a read of the token for this
    request finds it valid; else the token's 401. A revoked token is never answered otherwise
    than at the gate."""

    @functools.wraps(view)
    async def answer(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            result = await view(*args, **kwargs)
        except Exception:
            await _confirm()
            raise
        await _confirm()
        return result

    return answer


async def _confirm() -> None:
    if caller().kept and not g.get("token_checked", False):
        await fresh_caller()


async def revoked_refusal() -> Refused:
    """The refusal of the current request, whose store write found its token revoked (read
    again here, for the message: so not read once more by :func:`kept_view`)."""
    refused = await _gate().refusal(request.headers.get("Authorization"), caller())
    token_checked()
    return refused


async def record_refusal(refused: Refused) -> None:
    """Write ``refused`` to the audit log for the current request, which goes on."""
    await _gate().record_refusal(
        refused, method=request.method, path=request.path, remote=request.remote_addr
    )
