"""The SQLite store's audit log, a hash chain (:mod:`transporter.security.audit_chain`).

Every append, whichever call makes it, reads the chain's head (table ``audit_head``), seals the
entry after it and moves the head inside the caller's write transaction, whose lock keeps every
other writer of the file (task or process) out until it commits: the chain cannot fork.
"""

from __future__ import annotations

import sqlite3

from transporter.protocol.model import AuditEntry
from transporter.security import audit_chain
from transporter.security.audit_chain import ChainHead
from transporter.store.base import Page, StoreError
from transporter.store.json_rows import dump, load
from transporter.store.paging import clamp_limit, cursor_seq, page
from transporter.store.sqlite.connection import SQLiteConnection
from transporter.store.sqlite.schema import SEQ_END
from transporter.store.sqlite.transaction import write

ROWS_AT_ONCE = 150
"""Audit records written by one statement at most: 6 values each, within the bound on a
statement's values of any SQLite (999 before 3.32)."""


class SQLiteAudit(SQLiteConnection):
    async def audit(self, entry: AuditEntry) -> AuditEntry:
        return await self._call(_audit, entry)

    async def list_audit(self, *, limit: int = 100, cursor: str | None = None) -> Page[AuditEntry]:
        return await self._call(_list_audit, clamp_limit(limit), cursor_seq(cursor, below=SEQ_END))

    async def audit_after(self, after: int = 0, *, limit: int = 100) -> list[AuditEntry]:
        return await self._call(_audit_after, after, clamp_limit(limit))

    async def audit_head(self) -> ChainHead:
        return await self._call(_stored_audit_head)


class AuditAppender:
    """Appends records to the audit chain inside the caller's write transaction: the head is
    read at the first append and written once, by :meth:`finish`, before the commit.

    ``BEGIN IMMEDIATE`` holds the file's one write lock from the head's read to the commit, so
    no other append (of this process or any other on the file) comes in between; a transaction
    that fails before :meth:`finish` is rolled back whole, records and head alike.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._head: ChainHead | None = None
        """The head after this transaction's last append; ``None`` before the first."""
        self._rows: list[tuple[int, float, str, str, str, str]] = []
        """The records sealed, written by :meth:`finish` (in as few statements as may be: each
        is a trip for the interpreter's lock between the store's thread and the event loop)."""

    def append(self, entry: AuditEntry) -> AuditEntry:
        head = self._head
        if head is None:
            head = _audit_head(self._conn)
            if head is None:
                raise StoreError(
                    "the audit log's chain head is missing from the SQLite store (was the file"
                    " edited?); `transporter audit verify` checks the log"
                )
        stored = audit_chain.seal(entry, head)
        self._rows.append(
            (stored.seq, stored.at, stored.action, stored.agent_id, stored.event_id, dump(stored))
        )
        self._head = audit_chain.head_of(stored)
        return stored

    def finish(self) -> None:
        """Write the records and the new head (call it last in the transaction)."""
        for start in range(0, len(self._rows), ROWS_AT_ONCE):
            rows = self._rows[start : start + ROWS_AT_ONCE]
            self._conn.execute(
                "INSERT INTO audit (seq, at, action, agent_id, event_id, record) VALUES "  # noqa: S608
                + ", ".join(["(?, ?, ?, ?, ?, ?)"] * len(rows)),
                [value for row in rows for value in row],
            )
        self._rows = []
        if self._head is not None:
            self._conn.execute(
                "UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1",
                (self._head.seq, self._head.hash),
            )


def append_audit(conn: sqlite3.Connection, entry: AuditEntry) -> AuditEntry:
    """Seal ``entry`` after the chain head and move the head, inside the caller's write
    transaction (see :class:`AuditAppender`)."""
    appender = AuditAppender(conn)
    stored = appender.append(entry)
    appender.finish()
    return stored


def _audit(conn: sqlite3.Connection, entry: AuditEntry) -> AuditEntry:
    with write(conn):
        return append_audit(conn, entry)


def _audit_head(conn: sqlite3.Connection) -> ChainHead | None:
    row = conn.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
    return None if row is None else ChainHead(int(row[0]), str(row[1]))


def _stored_audit_head(conn: sqlite3.Connection) -> ChainHead:
    return _audit_head(conn) or ChainHead()


def _audit_after(conn: sqlite3.Connection, after: int, limit: int) -> list[AuditEntry]:
    rows = conn.execute(
        "SELECT record FROM audit WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
    ).fetchall()
    return [load(text, AuditEntry) for (text,) in rows]


def _list_audit(conn: sqlite3.Connection, limit: int, before: int | None) -> Page[AuditEntry]:
    rows = conn.execute(
        "SELECT record FROM audit WHERE seq < ? ORDER BY seq DESC LIMIT ?",
        (before if before is not None else SEQ_END - 1, limit + 1),
    ).fetchall()
    entries = [load(text, AuditEntry) for (text,) in rows]
    return page(entries, limit, lambda entry: entry.seq)
