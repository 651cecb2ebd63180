"""The SQLite store's write transactions."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from transporter.store.base import StoreError


@contextmanager
def write(conn: sqlite3.Connection, *, durable: bool = False) -> Iterator[None]:
    """One write transaction: the write lock is taken at once, so it cannot fail half-way.

    ``durable``: the commit is synced to disk before it returns (synchronous FULL).
    """
    if durable:
        conn.execute("PRAGMA synchronous = FULL")
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    finally:
        if durable:
            conn.execute("PRAGMA synchronous = NORMAL")


@contextmanager
def read(conn: sqlite3.Connection) -> Iterator[None]:
    """One read transaction: its statements all see the file as it was at the first of them."""
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")  # a read transaction only ends: nothing to keep or undo


def rowid(cur: sqlite3.Cursor) -> int:
    if cur.lastrowid is None:
        raise StoreError("SQLite gave no rowid for an insert")
    return cur.lastrowid
