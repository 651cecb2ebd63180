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


def rowid(cur: sqlite3.Cursor) -> int:
    if cur.lastrowid is None:
        raise StoreError("SQLite gave no rowid for an insert")
    return cur.lastrowid
