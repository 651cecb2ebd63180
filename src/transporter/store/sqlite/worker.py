"""The SQLite connection's own thread: the store's calls are handed to one long-lived thread,
one at a time, and each caller is woken with its result.

``trio.to_thread.run_sync`` costs more per call than the calls themselves cost SQLite for the
store's small reads and writes: a capacity limiter, a copy of the context, a thread from the
cache named for each job (two system calls). One thread that waits on a queue does the same
with a put and a wake-up (bench/throughput.py, one event per POST: about 4 calls per event).

A caller that gives up (its timeout, a cancellation) is not woken; its call still runs to its
end, and :attr:`Worker.busy` says so until then, as the limiter of ``to_thread`` did.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, cast

import outcome
import trio

type _Job = tuple[Callable[..., Any], tuple[Any, ...], Callable[[outcome.Outcome[Any]], None]]


class Worker:
    """One thread running the calls handed to :meth:`run`, in order. :meth:`start` it, and
    :meth:`stop` it once no call is to come."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._handed = 0
        self._ended = 0

    @property
    def busy(self) -> bool:
        """A call handed over has not ended yet (its caller may have given up on it)."""
        return self._ended < self._handed

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """The thread ends after the calls handed over so far."""
        self._jobs.put(None)

    async def run[R](self, fn: Callable[..., R], *args: Any) -> R:
        """``fn(*args)`` in the thread, after the calls handed over before it. Cancelling the
        caller abandons the call (it still runs); bound it with a cancel scope."""
        token = trio.lowlevel.current_trio_token()
        task = trio.lowlevel.current_task()
        waiting = True

        def back(result: outcome.Outcome[Any]) -> None:  # in trio's thread
            self._ended += 1
            if waiting:
                trio.lowlevel.reschedule(task, result)

        def done(result: outcome.Outcome[Any]) -> None:  # in the worker thread
            with contextlib.suppress(trio.RunFinishedError):  # trio has ended: nobody waits
                token.run_sync_soon(back, result)

        def abort(_: Any) -> trio.lowlevel.Abort:
            nonlocal waiting
            waiting = False
            return trio.lowlevel.Abort.SUCCEEDED

        self._handed += 1
        self._jobs.put((fn, args, done))
        # woken with the call's outcome, unwrapped here: its value, or its exception raised
        return cast(R, await trio.lowlevel.wait_task_rescheduled(abort))

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, args, done = job
            done(outcome.capture(fn, *args))


__all__ = ["Worker"]
