"""Bounded caches of what the stores decoded lately: by count and by the weight of the text."""

from __future__ import annotations

from collections import OrderedDict

from transporter.store.json_rows import load

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
        """``text``, stored under ``key``, decoded (:meth:`decode`): from here when it was
        lately."""
        known = self.recent.get(key)
        if known is not None and known[0] == text:
            return known[1]
        value = self.decode(key, text)
        self.wrote(key, text, value)
        return value

    def decode(self, key: str, text: str) -> T:
        return load(text, self.kind)

    def wrote(self, key: str, text: str, value: T) -> None:
        """``value`` is (about to be) stored under ``key`` as ``text``."""
        self.recent.put(key, (text, value), len(text))

    def last(self, key: str) -> T | None:
        """The value last read or written under ``key``, whatever is stored now."""
        known = self.recent.get(key)
        return None if known is None else known[1]
