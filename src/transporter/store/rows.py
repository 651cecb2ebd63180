"""What both stores do alike with what they keep: JSON in and out through the one converter,
pages and cursors."""

from __future__ import annotations

import json
from collections.abc import Callable

from transporter.protocol import codec
from transporter.store.base import MAX_LIMIT, InvalidCursor, Page, StoreError


def dump(value: object) -> str:
    return json.dumps(codec.unstructure(value), separators=(",", ":"))


def load[T](text: str, kind: type[T]) -> T:
    try:
        return codec.structure(json.loads(text), kind)
    except ValueError as exc:  # not JSON, or codec.ProtocolError
        raise StoreError(f"a stored {kind.__name__} cannot be read: {exc}") from exc


def page[T](items: list[T], limit: int, seq: Callable[[T], int]) -> Page[T]:
    """``items`` were fetched with ``limit + 1``: one more than asked says there is more."""
    if len(items) > limit:
        items = items[:limit]
        return Page(items, str(seq(items[-1])))
    return Page(items, None)


def clamp_limit(limit: int) -> int:
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    return min(limit, MAX_LIMIT)


def cursor_seq(cursor: str | None, *, below: int) -> int | None:
    """The ``seq`` a cursor stands for; :class:`InvalidCursor` for one never handed out."""
    if cursor is None:
        return None
    if not (cursor.isascii() and cursor.isdecimal()) or not 0 < int(cursor) < below:
        raise InvalidCursor(cursor)
    return int(cursor)
