"""Questions asked in rounds shared by their callers: each caller gets the answer of a round that
began after it asked, never of one already under way (which may have read the world before the
caller's reason to ask: a write it must confirm, a token revoked just before its request)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio


class Rounds[T]:
    """Rounds of ``ask`` shared by the callers of :meth:`after_now`. A round's task is the
    caller's that found none under way; if it is cancelled or fails, the callers that waited
    for it ask again (the failure is its caller's alone)."""

    def __init__(self, ask: Callable[[], Awaitable[T]]) -> None:
        self._ask = ask
        self._begun = 0
        """Rounds begun so far (the number of the latest)."""
        self._asking = False
        self._last: tuple[int, T] | None = None
        """The number of the latest round done, and what it found."""
        self._done = trio.Event()
        """Set when a round ends (done, failed or cancelled), then replaced."""
        self.waiting = 0
        """Callers in :meth:`after_now` now."""

    async def after_now(self) -> T:
        first = self._begun + 1  # a round begun from now on
        self.waiting += 1
        try:
            while True:
                if self._last is not None and self._last[0] >= first:
                    return self._last[1]
                if self._asking:
                    await self._done.wait()
                    continue
                self._asking = True
                self._begun += 1
                mine = self._begun
                try:
                    self._last = (mine, await self._ask())
                finally:
                    self._asking = False
                    self._done.set()
                    self._done = trio.Event()
        finally:
            self.waiting -= 1


__all__ = ["Rounds"]
