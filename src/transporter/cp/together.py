"""Group commit without a writer task: what callers hand in while a write is under way is
written together in the next one, by the first of them to find no write under way; each caller
is answered once the write that holds its item is done (durable, for the store's submits).

Events posted one per request by several clients at once were written one by one: a
transaction, a commit (an fsync on SQLite) and a trip to the store's thread each. Together they
cost one of each (bench/throughput.py, one event per POST).

Alone, an item is written at once: latency does not suffer. A write is shielded from the
cancellation of the caller that does it (a client that hangs up): it holds the others' items
too, and the store bounds it with its own timeout. Items wait in a list no longer than the
requests under way (the API's connection limits bound those); a write takes at most
``most`` of them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import attrs
import trio


@attrs.define(eq=False)
class _Slot[I, R]:
    item: I
    done: bool = False
    result: R | None = None
    error: Exception | None = None


class Together[I, R]:
    """Items written together by ``write`` (one result per item, in order)."""

    def __init__(self, write: Callable[[Sequence[I]], Awaitable[Sequence[R]]], *, most: int):
        self._write = write
        self._most = most
        self._waiting: list[_Slot[I, R]] = []
        self._writing = False
        self._wrote = trio.Event()
        """Set when a write ends, then replaced."""

    async def write(self, item: I) -> R:
        """``item`` written, with whatever else waits: its result, or the write's error."""
        slot = _Slot[I, R](item)
        self._waiting.append(slot)
        try:
            while not slot.done:
                if self._writing:
                    await self._wrote.wait()
                else:
                    await self._write_next()
        except BaseException:
            if not slot.done and slot in self._waiting:
                self._waiting.remove(slot)  # given up before its write began
            raise
        if slot.error is not None:
            raise slot.error
        return slot.result  # type: ignore[return-value]  # set with done, unless an error

    async def settled(self) -> None:
        """Until no write is under way: the one that holds the item of a caller that gave up
        while another wrote it is done, one way or the other."""
        while self._writing:
            await self._wrote.wait()

    async def _write_next(self) -> None:
        self._writing = True
        batch, self._waiting = self._waiting[: self._most], self._waiting[self._most :]
        try:
            with trio.CancelScope(shield=True):
                results = await self._write([slot.item for slot in batch])
        except Exception as exc:  # the write's error is each caller's
            for slot in batch:
                slot.error, slot.done = exc, True
        else:
            for slot, result in zip(batch, results, strict=True):
                slot.result, slot.done = result, True
        finally:
            for slot in batch:  # the writer itself interrupted (KeyboardInterrupt, ...)
                if not slot.done:
                    slot.error, slot.done = Interrupted("the write was interrupted"), True
            self._writing = False
            self._wrote.set()
            self._wrote = trio.Event()


class Interrupted(Exception):
    """The write holding an item ended before it answered: the item's outcome is unknown."""


__all__ = ["Interrupted", "Together"]
