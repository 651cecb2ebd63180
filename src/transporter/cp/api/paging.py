"""A list answer for a caller who sees only some of what the store lists (``GET /events`` and
``GET /rollouts`` for a scoped token): the store's pages read in turn, keeping what the caller
may see, so that an answer never scans the whole store."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from transporter.store.base import Page


class Sequenced(Protocol):
    """A stored record with its order of acceptance (a list's cursor is the last one's)."""

    @property
    def seq(self) -> int: ...


async def visible_page[T: Sequenced](
    fetch: Callable[[str | None], Awaitable[Page[T]]],
    visible: Callable[[T], bool],
    *,
    limit: int,
    cursor: str | None,
    pages: int,
) -> Page[T]:
    """Up to ``limit`` records that ``visible`` keeps, newest first, from at most ``pages`` of
    the store's pages (``fetch(cursor)``). The cursor is the ``seq`` of the last record looked
    at, so an answer may hold fewer than ``limit`` records and still give one to go on from
    (``None`` once the store has no more)."""
    items: list[T] = []
    for _ in range(pages):
        page = await fetch(cursor)
        for index, record in enumerate(page.items):
            if visible(record):
                items.append(record)
                if len(items) == limit:
                    more = index + 1 < len(page.items) or page.cursor is not None
                    return Page(items, str(record.seq) if more else None)
        if page.cursor is None:
            return Page(items, None)
        cursor = page.cursor
    return Page(items, cursor)
