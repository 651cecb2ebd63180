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


DECODED_SIZE = 4096
"""Values a :class:`Decoded` keeps at most."""
DECODED_CHARS = 32 * 1024 * 1024
"""Characters of stored text a :class:`Decoded` keeps at most, all values together."""


class Decoded[T]:
    """Stored values decoded lately, each kept with the text it was decoded from (or written
    as) and used only when the text just read is that same text: what another process wrote,
    or a write that did not happen, is decoded afresh. Decoding an event's record is most of
    the work of updating it, and a running event is updated at each phase."""

    def __init__(
        self, kind: type[T], *, size: int = DECODED_SIZE, chars: int = DECODED_CHARS
    ) -> None:
        self.kind = kind
        self.size = size
        self.chars = chars
        self._kept: OrderedDict[str, tuple[str, T]] = OrderedDict()
        self._chars = 0

    def load(self, key: str, text: str) -> T:
        """``text``, stored under ``key``, decoded (:func:`load`): from here when it was lately."""
        known = self._kept.get(key)
        if known is not None and known[0] == text:
            self._kept.move_to_end(key)
            return known[1]
        value = load(text, self.kind)
        self.wrote(key, text, value)
        return value

    def wrote(self, key: str, text: str, value: T) -> None:
        """``value`` is (about to be) stored under ``key`` as ``text``."""
        replaced = self._kept.pop(key, None)
        if replaced is not None:
            self._chars -= len(replaced[0])
        if len(text) > self.chars:
            return
        self._kept[key] = (text, value)
        self._chars += len(text)
        while len(self._kept) > self.size or self._chars > self.chars:
            _, (oldest, _) = self._kept.popitem(last=False)
            self._chars -= len(oldest)

    @property
    def kept_chars(self) -> int:
        return self._chars


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
