"""Listings a page at a time: limits, pages and the cursors handed out with them."""

from __future__ import annotations

from collections.abc import Callable

from transporter.store.base import MAX_LIMIT, InvalidCursor, Page


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
