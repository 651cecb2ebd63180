"""What becomes of one queue entry: stored (settle it), refused (dead-letter it with the error
the API answered), or not decided (the store failed: leave it, to be tried again).

The entry is handed to the API's own ``POST /events`` (:mod:`.dispatch`), with its token as the
bearer token: the same token records, revocation and scopes, the same validation, signing,
storing and audit as a POST, and the answer a producer posting it would have had. An entry
stored twice (its replica died after storing, before settling it) is the same event, whose
second submission answers ``exists``: settled, nothing stored twice.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import attrs
import trio

from transporter.cp.queue.dispatch import App, post
from transporter.protocol.queue_entry import BODY, FORMAT_VERSION, MAX_ENTRY_BYTES, TOKEN, VERSION
from transporter.security.tokens import token_id_of
from transporter.store.queue_store import DeadLetter, QueueEntry

MAX_TOKEN_CHARS = 256
"""A token is 60-odd characters; a longer field is not one (and is not passed on)."""
DISPATCH_TIMEOUT = 60.0
"""Seconds one entry's submission may take before it is left to be tried again."""
_ID_CHARS = 256
_PARSED_FOR_ID = 256 * 1024
"""A refused body larger than this is not read again for the id it names (CPU on the loop)."""


@attrs.frozen
class Verdict:
    kind: Literal["stored", "dead", "retry"]
    letter: DeadLetter | None = None
    why: str = ""
    """For ``retry``: what failed (logged)."""


async def judge(app: App, entry: QueueEntry, *, now: float) -> Verdict:
    """What to do with ``entry`` (see the module's docstring)."""
    fields = entry.fields
    token = fields.get(TOKEN, "")
    shown_id = token_id_of(token) if len(token) <= MAX_TOKEN_CHARS else None
    body = fields.get(BODY)

    def dead(
        status: int, error: str, message: str, field: str | None = None, **more: Any
    ) -> Verdict:
        letter = DeadLetter(
            entry_id=entry.entry_id,
            at=now,
            status=status,
            error=error,
            message=message,
            field=field,
            event_id=more.get("event_id") or _named_id(body),
            token_id=shown_id,
        )
        return Verdict("dead", letter)

    version = fields.get(VERSION)
    if version != FORMAT_VERSION:
        return dead(
            400,
            "invalid_entry",
            f"entry format {_short(version)} is not one this control plane reads"
            f" ({FORMAT_VERSION!r}); upgrade the control planes first",
            VERSION,
        )
    if body is None:
        return dead(400, "invalid_entry", f"the entry has no {BODY!r} field", BODY)
    raw = body.encode("utf-8", "replace")
    if len(raw) > MAX_ENTRY_BYTES:
        return dead(413, "event_too_large", f"the body is more than {MAX_ENTRY_BYTES} bytes", BODY)
    if len(token) > MAX_TOKEN_CHARS:
        return dead(401, "unauthorized", "the entry's token is not a token of this control plane")
    answer = None
    with trio.move_on_after(DISPATCH_TIMEOUT):
        answer = await post(app, "/events", raw, token=token or None)
    if answer is None:
        return Verdict("retry", why=f"not answered within {DISPATCH_TIMEOUT:g} s")
    reply = answer.body if isinstance(answer.body, dict) else {}
    if 200 <= answer.status < 300:
        return Verdict("stored")
    message = _text(reply.get("message")) or f"answered {answer.status}"
    if answer.status >= 500 or answer.status == 429:
        return Verdict("retry", why=message)
    named = _text(reply.get("event_id")) or _text(reply.get("rollout_id"))
    return dead(
        answer.status,
        _text(reply.get("error")) or "refused",
        message,
        _text(reply.get("field")) or None,
        event_id=named,
    )


def _named_id(body: str | None) -> str | None:
    """The ``id`` the body names, if it is JSON that names one (a dead letter's ``event_id``)."""
    if body is None or len(body) > _PARSED_FOR_ID:
        return None
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    found = parsed.get("id") if isinstance(parsed, dict) else None
    return found[:_ID_CHARS] if isinstance(found, str) and found else None


def _text(value: object) -> str:
    return value[:2000] if isinstance(value, str) else ""


def _short(value: str | None) -> str:
    return "(none)" if value is None else repr(value[:20])
