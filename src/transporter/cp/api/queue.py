"""Queue mode's dead letters: ``GET /queue/dead-letters``, the entries control planes refused,
each with the error the API would have answered (:mod:`transporter.cp.queue`).

Any token may list them, but only an admin token sees every letter: another sees the letters
of entries that carried it (a producer finds out why its own entries were refused, and learns
nothing of other tenants' submissions: not even that they were made). On the embedded store,
which has no queue, the answer is 404 ``no_queue``.
"""

from __future__ import annotations

from quart import Blueprint, request

from transporter.cp.api.access import needs
from transporter.cp.api.errors import Answer, error
from transporter.cp.api.events import MAX_LIMIT
from transporter.cp.api.queries import caller, int_arg
from transporter.cp.api.services import services
from transporter.cp.openapi.bounds import DEAD_LETTERS_PAGE
from transporter.security.tokens import Role
from transporter.store.base import InvalidCursor, QueueUnsupported
from transporter.store.queue_store import DeadLetter

routes = Blueprint("queue", __name__)


@routes.get("/queue/dead-letters")
@needs(Role.READ)
async def dead_letters() -> Answer:
    """Newest first, with a ``cursor`` for the next page (a token's own letters are picked
    from a page of all, so a page may hold fewer than ``limit`` and still give a cursor); with
    ``entry_id``, the letter of that entry alone (or none), found without paging through."""
    who = caller()
    token_id = None if who.token is None or who.token.role is Role.ADMIN else who.token.id
    entry_id = request.args.get("entry_id")
    try:
        if entry_id is not None:  # a producer following its entry (``--wait``)
            found = await services().store.dead_letter_of(entry_id, token_id=token_id)
            return {"items": [shown(found)] if found else [], "cursor": None}, 200
        page = await services().store.dead_letters(
            limit=int_arg("limit", DEAD_LETTERS_PAGE, 1, MAX_LIMIT),
            cursor=request.args.get("cursor") or None,
            token_id=token_id,
        )
    except QueueUnsupported as exc:
        return error(404, "no_queue", str(exc))
    except InvalidCursor:
        if entry_id is None:
            raise  # the cursor's: answered as every endpoint's
        message = "entry_id: not a queue entry's id (like 1700000000000-0)"
        return error(400, "invalid_query", message, field="entry_id")
    return {"items": [shown(letter) for letter in page.items], "cursor": page.cursor}, 200


def shown(letter: DeadLetter) -> dict[str, object]:
    return {
        "id": letter.letter_id,
        "entry_id": letter.entry_id,
        "at": letter.at,
        "status": letter.status,
        "error": letter.error,
        "message": letter.message,
        "field": letter.field,
        "event_id": letter.event_id,
        "token_id": letter.token_id,
    }
