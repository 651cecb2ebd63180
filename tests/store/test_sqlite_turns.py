"""The SQLite store's calls take turns for its one thread: the call timeout bounds a call's own
work and a stuck thread, not the time queued behind other calls; a stuck thread still makes the
store unavailable, soon, for every call queued, and the store works again once it ends."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from transporter.store import StoreUnavailable
from transporter.store.sqlite.connection import QUEUE_TIMEOUTS, SQLiteConnection

TIMEOUT = 0.3


def working(seconds: float) -> Callable[[sqlite3.Connection], int]:
    def work(conn: sqlite3.Connection) -> int:
        time.sleep(seconds)  # a query that takes this long, in the store's thread
        return int(conn.execute("SELECT 1").fetchone()[0])

    return work


async def test_a_queue_longer_than_the_timeout_is_not_an_outage(tmp_path: Path) -> None:
    store = await SQLiteConnection.open(tmp_path / "t.db", call_timeout=TIMEOUT)
    try:
        answers: list[int] = []

        async def call() -> None:
            answers.append(await store._call(working(TIMEOUT / 4)))

        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            for _ in range(12):  # 3 timeouts' work in all
                nursery.start_soon(call)
        assert answers == [1] * 12
        assert trio.current_time() - start >= 3 * TIMEOUT
    finally:
        await store.aclose()


async def test_a_queue_that_waits_too_long_for_its_turn_is_told_so(tmp_path: Path) -> None:
    store = await SQLiteConnection.open(tmp_path / "t.db", call_timeout=TIMEOUT)
    try:
        outcomes: list[str] = []

        async def call() -> None:
            try:
                await store._call(working(TIMEOUT / 2))  # well within its own timeout
                outcomes.append("answered")
            except StoreUnavailable as exc:
                outcomes.append(str(exc))

        async with trio.open_nursery() as nursery:
            for _ in range(2 * QUEUE_TIMEOUTS + 2):  # more work than the wait for a turn
                nursery.start_soon(call)
        waited = f"SQLite's queue of calls gave no turn within {TIMEOUT * QUEUE_TIMEOUTS:g} s"
        assert outcomes.count("answered") >= QUEUE_TIMEOUTS - 1
        assert set(outcomes) == {"answered", waited}
    finally:
        await store.aclose()


async def test_a_stuck_thread_fails_every_queued_call_soon_then_the_store_works(
    tmp_path: Path,
) -> None:
    store = await SQLiteConnection.open(tmp_path / "t.db", call_timeout=TIMEOUT)
    unstuck = threading.Event()

    def stuck(conn: sqlite3.Connection) -> None:
        unstuck.wait(30)  # a thread that does not come back (bounded, so the test ends)

    try:
        failures: list[str] = []

        async def call() -> None:
            with pytest.raises(StoreUnavailable) as failed:
                await store._call(working(0))
            failures.append(str(failed.value))

        start = trio.current_time()
        with pytest.raises(StoreUnavailable, match=f"did not answer within {TIMEOUT}"):
            await store._call(stuck)
        async with trio.open_nursery() as nursery:
            for _ in range(20):
                nursery.start_soon(call)
        # The first waits its timeout for the thread; then all the others fail at once.
        assert trio.current_time() - start < 3 * TIMEOUT + 1
        assert failures[0] == f"SQLite did not answer within {TIMEOUT} s"
        assert all(f.startswith("SQLite is still busy with a call given up") for f in failures[1:])
        unstuck.set()
        with trio.fail_after(5):  # the abandoned thread gives the connection back as it ends
            await store._worker.run(lambda: None)  # after the call given up on
        assert await store._call(working(0)) == 1
    finally:
        unstuck.set()
        await store.aclose()
