"""Opening the SQLite file, and running the store's calls in its worker thread.

sqlite3 blocks, so every call runs in the connection's own thread (:mod:`.worker`: one
connection, used by one thread, a call at a time), with a timeout.

Calls take turns (a fair lock) before they reach the thread, and the call's timeout starts with
its turn: it bounds the call's own work (``busy_timeout`` on a locked file, a stuck thread), not
the time spent queued behind other calls. A queue of 10,000 cheap reads, as a reconnect storm
makes, is slow, not an outage; the wait for a turn has a bound of its own, longer.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import trio

from transporter.store.base import StoreError, StoreUnavailable
from transporter.store.files import prepare_private, tighten
from transporter.store.rollout_rows import decoded_rollouts
from transporter.store.sqlite.cache import EventCache
from transporter.store.sqlite.schema import migrate
from transporter.store.sqlite.worker import Worker

DEFAULT_TIMEOUT = 10.0
QUEUE_TIMEOUTS = 6
"""A call waits for its turn at most this many call timeouts: every turn is bounded, so the queue
moves; a call that still gets no turn in time is told the store is unavailable."""


class SQLiteConnection:
    """The store's one connection and its life; the concerns' parts call :meth:`_call`."""

    def __init__(self, conn: sqlite3.Connection, *, call_timeout: float) -> None:
        self._conn: sqlite3.Connection | None = conn
        self._timeout = call_timeout
        self._worker = Worker(f"transporter-sqlite-{id(self):x}")
        self._worker.start()
        self._turn = trio.Lock()
        """Held by the call whose thread runs (or waits for a thread given up on to end)."""
        self._queue_timeout = call_timeout * QUEUE_TIMEOUTS
        self._gave_up_at: float | None = None
        """When a call was last given up on (the thread is busy with it until it ends)."""
        self._events = EventCache()
        """Decoded events, used only from the worker thread (one call at a time)."""
        self._rollouts = decoded_rollouts()
        """Decoded rollouts, likewise."""

    @classmethod
    async def open(cls, path: Path, *, call_timeout: float = DEFAULT_TIMEOUT) -> Self:
        """Open (and create or migrate) the file; the caller must :meth:`aclose` the store.

        Not under ``fail_after``: abandoning the thread could leak the connection it opens. It
        is bounded by ``busy_timeout`` instead (the only wait that can be long).
        """
        try:
            conn = await trio.to_thread.run_sync(connect, path, round(call_timeout * 1000))
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open SQLite store {path}: {exc}") from exc
        except OSError as exc:
            raise StoreUnavailable(f"cannot create the folder of {path}: {exc}") from exc
        return cls(conn, call_timeout=call_timeout)

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        # In the thread, after any call still running there (one given up on included).
        with trio.CancelScope(shield=True):
            await self._worker.run(conn.close)
        self._worker.stop()

    async def _call[R](self, fn: Callable[..., R], *args: Any) -> R:
        conn = self._conn
        if conn is None:
            raise StoreUnavailable("the store is closed")
        try:
            with trio.fail_after(self._queue_timeout):
                await self._turn.acquire()
        except trio.TooSlowError:
            raise StoreUnavailable(
                f"SQLite's queue of calls gave no turn within {self._queue_timeout:g} s"
            ) from None
        try:
            self._check_stuck()
            conn = self._conn
            if conn is None:  # closed while the call waited for its turn
                raise StoreUnavailable("the store is closed")
            with trio.fail_after(self._timeout):
                # The timeout holds even while the thread is stuck: the call is abandoned, and
                # the calls after it wait in the thread's queue until it ends.
                return await self._worker.run(fn, conn, *args)
        except trio.TooSlowError:
            if self._worker.busy and self._gave_up_at is None:
                self._gave_up_at = trio.current_time()
            raise StoreUnavailable(f"SQLite did not answer within {self._timeout} s") from None
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite: {exc}") from exc
        finally:
            self._turn.release()

    def _check_stuck(self) -> None:
        """Fail at once while a thread given up on a call timeout ago still holds the
        connection: each call in the queue would wait a timeout of its own for it."""
        if not self._worker.busy:
            self._gave_up_at = None
        elif self._gave_up_at is not None:
            stuck = trio.current_time() - self._gave_up_at
            if stuck >= self._timeout:
                raise StoreUnavailable(
                    f"SQLite is still busy with a call given up {stuck:.0f} s ago"
                )

    async def ping(self) -> None:
        await self._call(_ping)

    async def durability_warnings(self) -> list[str]:
        return []  # accepting commits with synchronous=FULL in WAL mode (see connect)


def connect(path: Path, busy_ms: int) -> sqlite3.Connection:
    prepare_private(path)
    conn = sqlite3.connect(path, check_same_thread=False, autocommit=True)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise StoreError(f"SQLite store {path}: journal_mode is {mode!r}, WAL is required")
        # In WAL mode, NORMAL syncs only at checkpoints: a power cut (not a kill -9: the WAL is
        # in the OS's cache by then) could lose transactions that were already committed. FULL
        # syncs the WAL at every commit. Accepting an event is FULL (see write(durable=True)),
        # so it is on disk before the producer hears "202 accepted", as promised; progress
        # reports are NORMAL: one lost in a power cut leaves its event unfinished, so it is
        # delivered again and the agent answers with the result it recorded. Each FULL commit
        # also syncs every NORMAL one before it in the WAL.
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        migrate(conn, path)
        tighten(path)  # the -wal and -shm files exist now
    except BaseException:
        conn.close()
        raise
    return conn


def _ping(conn: sqlite3.Connection) -> None:
    conn.execute("SELECT 1").fetchone()
