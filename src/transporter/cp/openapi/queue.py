"""``/queue/dead-letters``: queue mode's refused entries, and their schemas."""

from __future__ import annotations

from typing import Any

from transporter.cp.openapi.bounds import DEAD_LETTERS_PAGE
from transporter.cp.openapi.parts import (
    BAD_QUERY,
    CURSOR,
    INTEGER,
    NUMBER,
    STRING,
    UNAVAILABLE,
    answer,
    array,
    error,
    limit,
    nullable,
    obj,
    query,
    ref,
)

ENTRY_ID = query(
    "entry_id",
    STRING,
    "Only the letter of this queue entry (its stream id, as ``produce k8s --mode queue``"
    " appended it): one item, or none while it is not refused (or not yours).",
)


def paths(*, max_limit: int) -> dict[str, Any]:
    return {
        "/queue/dead-letters": {
            "get": {
                "operationId": "listDeadLetters",
                "summary": (
                    "Queue entries the control planes refused, newest first, each with the"
                    " error a POST /events would have answered. An admin token sees all of"
                    " them; another token, those of the entries that carried it."
                ),
                "parameters": [limit(DEAD_LETTERS_PAGE, max_limit), CURSOR, ENTRY_ID],
                "responses": {
                    "200": answer("A page of dead letters.", ref("DeadLetterPage")),
                    "400": BAD_QUERY,
                    "404": error("The store has no queue (``no_queue``): it is not Redis."),
                    "503": UNAVAILABLE,
                },
            }
        }
    }


def schemas() -> dict[str, Any]:
    return {
        "DeadLetter": obj(
            None,
            id=STRING,
            entry_id=STRING,
            at=NUMBER,
            status=INTEGER,
            error=STRING,
            message=STRING,
            field=nullable(STRING),
            event_id=nullable(STRING),
            token_id=nullable(STRING),
        ),
        "DeadLetterPage": obj(None, items=array(ref("DeadLetter")), cursor=nullable(STRING)),
    }
