"""What both stores do alike with what they keep: JSON in and out through the one converter,
pages and cursors."""

from __future__ import annotations

import json
from collections import OrderedDict
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


RECENT_SIZE = 4096
"""Values a :class:`Recent` keeps at most."""
RECENT_WEIGHT = 32 * 1024 * 1024
"""Total weight (characters of stored text) a :class:`Recent` keeps at most."""


class Recent[T]:
    """The values used lately, by key, bounded by their count and by their total weight; one
    heavier than the whole budget is not kept (and evicts nothing)."""

    def __init__(self, *, size: int = RECENT_SIZE, weight: int = RECENT_WEIGHT) -> None:
        self.size = size
        self.max_weight = weight
        self._kept: OrderedDict[str, tuple[T, int]] = OrderedDict()
        self.weight = 0
        """The weight of what is kept now."""

    def get(self, key: str) -> T | None:
        found = self._kept.get(key)
        if found is None:
            return None
        self._kept.move_to_end(key)
        return found[0]

    def put(self, key: str, value: T, weight: int) -> None:
        replaced = self._kept.pop(key, None)
        if replaced is not None:
            self.weight -= replaced[1]
        if weight > self.max_weight:
            return
        self._kept[key] = (value, weight)
        self.weight += weight
        while len(self._kept) > self.size or self.weight > self.max_weight:
            _, (_, oldest) = self._kept.popitem(last=False)
            self.weight -= oldest

    def keys(self) -> list[str]:
        """What is kept, least recently used first."""
        return list(self._kept)


class Decoded[T]:
    """Stored values decoded lately, each kept with the text it was decoded from (or written
    as) and used only when the text just read is that same text: what another process wrote,
    or a write that did not happen, is decoded afresh. Decoding an event's record is most of
    the work of updating it, and a running event is updated at each phase."""

    def __init__(
        self, kind: type[T], *, size: int = RECENT_SIZE, chars: int = RECENT_WEIGHT
    ) -> None:
        self.kind = kind
        self.recent: Recent[tuple[str, T]] = Recent(size=size, weight=chars)
        """What is kept: ``(text, value)`` by key, weighed by the text's length."""

    def load(self, key: str, text: str) -> T:
        """``text``, stored under ``key``, decoded (:func:`load`): from here when it was lately."""
        known = self.recent.get(key)
        if known is not None and known[0] == text:
            return known[1]
        value = load(text, self.kind)
        self.wrote(key, text, value)
        return value

    def wrote(self, key: str, text: str, value: T) -> None:
        """``value`` is (about to be) stored under ``key`` as ``text``."""
        self.recent.put(key, (text, value), len(text))


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
