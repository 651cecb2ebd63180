"""What becomes of one queue entry: stored (settle it), refused (dead-letter it with the error
the API answered), or not decided (the store failed: leave it, to be tried again).

The entry is handed to the API's own ``POST /events`` (:mod:`.dispatch`), with its token as the
bearer token: the same token records, revocation and scopes, the same validation, signing,
storing and audit as a POST, and the answer a producer posting it would have had. An entry
stored twice (its replica died after storing, before settling it) is the same event, whose
second submission answers ``exists``: settled, nothing stored twice.

Every field is hostile (any producer that may XADD wrote it): a token that is not one of ours
never reaches a header (a newline in it would fail the request's parsing, not answer 401), and
every text a letter keeps is valid UTF-8 (a lone surrogate in a JSON id would fail its write).
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

import attrs
import trio

from transporter.cp.queue.dispatch import App, post
from transporter.protocol.model import Event
from transporter.protocol.queue_entry import BODY, FORMAT_VERSION, MAX_ENTRY_BYTES, TOKEN, VERSION
from transporter.protocol.rollout_request import is_rollout_body
from transporter.protocol.submission import InvalidEvent, parse_submission
from transporter.security.tokens import token_id_of
from transporter.store.base import Store
from transporter.store.queue_store import DeadLetter, QueueEntry

MAX_TOKEN_CHARS = 256
"""A token is 60-odd characters; a longer field is not one (and is not passed on)."""
DISPATCH_TIMEOUT = 60.0
"""Seconds one entry's submission may take at most before it is left to be tried again (less
when entries are claimed sooner: :meth:`~.consumer.QueueSettings.dispatch_timeout`)."""
TIMED_OUT = 504
"""The status a retry verdict carries when the submission did not answer in time."""
NOT_THE_ENTRYS_FAULT = frozenset({503, TIMED_OUT, 429})
"""Failures tried again however often: the store failed or was slow, the API was busy (never
an entry's fault). Any other (a 500) is tried :data:`~.consumer.MAX_DELIVERIES` times."""
_TOKEN = re.compile(rf"\A[!-~]{{1,{MAX_TOKEN_CHARS}}}\Z")
"""Printable ASCII without whitespace: what a header may carry, and every token of ours is."""
_ID_CHARS = 256
_PARSED_FOR_ID = 256 * 1024
"""A refused body larger than this is not read again for the id it names (CPU on the loop)."""
_INLINE_PARSE = 64 * 1024
"""A body larger than this is parsed again (:func:`already_stored`) in a worker thread."""


@attrs.frozen
class Verdict:
    kind: Literal["stored", "dead", "retry"]
    letter: DeadLetter | None = None
    why: str = ""
    """For ``retry``: what failed (logged, and the letter's message once given up)."""
    status: int = 0
    """For ``retry``: the status answered (5xx, 429, or :data:`TIMED_OUT`)."""


async def judge(
    app: App, store: Store, entry: QueueEntry, *, now: float, within: float = DISPATCH_TIMEOUT
) -> Verdict:
    """What to do with ``entry`` (see the module's docstring). :class:`StoreUnavailable` when
    the token of an entry refused unread could not be looked up (tried again)."""
    fields = entry.fields
    token = fields.get(TOKEN, "")
    body = fields.get(BODY)
    unread = _refused_unread(fields, token, body)
    if unread is not None:
        owner = await _owner(store, token)
        return letter_verdict(entry, now, *unread, body=body, token_id=owner)
    assert body is not None  # _refused_unread refuses an entry without one
    answer = None
    with trio.move_on_after(within):
        answer = await post(app, "/events", body.encode("utf-8", "replace"), token=token or None)
    if answer is None:
        return Verdict("retry", why=f"not answered within {within:g} s", status=TIMED_OUT)
    reply = answer.body if isinstance(answer.body, dict) else {}
    if 200 <= answer.status < 300:
        return Verdict("stored")
    message = _text(reply.get("message")) or f"answered {answer.status}"
    if answer.status >= 500 or answer.status == 429:
        return Verdict("retry", why=message, status=answer.status)
    # The token is the letter's owner only once the API took it (a 401 says it did not): no
    # one plants letters in another token's view with a token of that id's shape.
    owner = token_id_of(token) if token and answer.status != 401 else None
    named = _text(reply.get("event_id")) or _text(reply.get("rollout_id"))
    return letter_verdict(
        entry,
        now,
        answer.status,
        _text(reply.get("error")) or "refused",
        message,
        _text(reply.get("field")) or None,
        body=body,
        token_id=owner,
        event_id=named or None,
    )


def letter_verdict(
    entry: QueueEntry,
    now: float,
    status: int,
    error: str,
    message: str,
    field: str | None = None,
    *,
    body: str | None,
    token_id: str | None,
    event_id: str | None = None,
) -> Verdict:
    """Dead-letter ``entry`` with this error; the event id the body names when not given."""
    letter = DeadLetter(
        entry_id=entry.entry_id,
        at=now,
        status=status,
        error=error,
        message=message,
        field=field,
        event_id=event_id or _named_id(body),
        token_id=token_id,
    )
    return Verdict("dead", letter)


def _refused_unread(
    fields: dict[str, str], token: str, body: str | None
) -> tuple[int, str, str, str | None] | None:
    """Why the entry is refused before the API sees it, if it is (status, error, message,
    field)."""
    version = fields.get(VERSION)
    if version != FORMAT_VERSION:
        return (
            400,
            "invalid_entry",
            f"entry format {_short(version)} is not one this control plane reads"
            f" ({FORMAT_VERSION!r}); upgrade the control planes first",
            VERSION,
        )
    if body is None:
        return 400, "invalid_entry", f"the entry has no {BODY!r} field", BODY
    if len(body) > MAX_ENTRY_BYTES or len(body.encode("utf-8", "replace")) > MAX_ENTRY_BYTES:
        return 413, "event_too_large", f"the body is more than {MAX_ENTRY_BYTES} bytes", BODY
    if token and (not _TOKEN.match(token) or token_id_of(token) is None):
        return 401, "unauthorized", "the entry's token is not a token of this control plane", None
    return None


async def _owner(store: Store, token: str) -> str | None:
    """The id of ``token`` if it is a valid token (known, its secret, not revoked): the owner
    of the letter of an entry refused before the API saw it."""
    token_id = token_id_of(token) if _TOKEN.match(token) else None
    if token_id is None:
        return None
    record = await store.get_token(token_id)
    if record is None or record.revoked_at is not None or not record.matches(token):
        return None
    return token_id


async def already_stored(store: Store, entry: QueueEntry) -> bool:
    """Whether the event ``entry`` asks for is stored already, the same request: an entry
    stored by a replica that could not settle it, refused when claimed again because its token
    was revoked (or narrowed) since. Nothing is stored twice either way."""
    body = entry.fields.get(BODY)
    event_id = _named_id(body)
    if body is None or event_id is None:
        return False
    record = await store.get_event(event_id)
    if record is None:
        return False
    stored = record.event

    def same() -> bool:
        try:
            parsed = json.loads(body)
            if is_rollout_body(parsed):
                return False
            asked: Event = parse_submission(
                parsed, now=stored.created_at, new_id=str, created_by=stored.created_by
            )
        except (ValueError, InvalidEvent):
            return False
        return stored.same_request(asked)

    return same() if len(body) < _INLINE_PARSE else await trio.to_thread.run_sync(same)


def _named_id(body: str | None) -> str | None:
    """The ``id`` the body names, if it is JSON that names one (a dead letter's ``event_id``)."""
    if body is None or len(body) > _PARSED_FOR_ID:
        return None
    try:
        parsed: Any = json.loads(body)
    except ValueError:
        return None
    found = parsed.get("id") if isinstance(parsed, dict) else None
    return _text(found)[:_ID_CHARS] or None


def _text(value: object) -> str:
    """A text of the answer or the body, as a letter keeps it: bounded, valid UTF-8."""
    if not isinstance(value, str):
        return ""
    return value[:2000].encode("utf-8", "replace").decode("utf-8")


def _short(value: str | None) -> str:
    return "(none)" if value is None else repr(value[:20])
