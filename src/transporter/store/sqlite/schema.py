"""The SQLite store's schema and the migrations that bring an older file up to it."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from transporter.protocol.model import AuditEntry, EventState
from transporter.security import audit_chain
from transporter.security.audit_chain import ChainHead
from transporter.store.base import StoreError
from transporter.store.json_rows import dump, load
from transporter.store.rollout_rows import OPEN_STATES
from transporter.store.sqlite.transaction import write

SCHEMA_VERSION = 10

SEQ_END = 2**63
"""Above every ``seq`` SQLite can hand out (its integers are 64-bit)."""

OPEN = "(" + ", ".join(f"'{state.value}'" for state in EventState if not state.terminal) + ")"
"""States whose events still need work. Constant text (no input of anybody's), used both in the
partial indexes and in the queries, which must repeat it exactly for SQLite to use them."""

OPEN_ROLLOUTS = "(" + ", ".join(f"'{state.value}'" for state in OPEN_STATES) + ")"
"""States of the rollouts that are not over (:data:`OPEN`'s counterpart, constant text too)."""

EVENT_INDEXES = (
    "CREATE INDEX events_by_agent ON events (target_agent, seq)",
    "CREATE INDEX events_by_state ON events (state, seq)",
    f"CREATE INDEX events_open_by_agent ON events (target_agent, seq) WHERE state IN {OPEN}",
    f"CREATE INDEX events_open_by_expiry ON events (expires_at) WHERE state IN {OPEN}",
)
"""The events table's indexes (made again when migration 9 makes the table anew)."""

MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            target_agent TEXT NOT NULL,
            state TEXT NOT NULL,
            expires_at REAL NOT NULL,
            record TEXT NOT NULL
        )""",
        *EVENT_INDEXES,
        "CREATE TABLE agents (id TEXT PRIMARY KEY, record TEXT NOT NULL) WITHOUT ROWID",
        """CREATE TABLE audit (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            at REAL NOT NULL,
            action TEXT NOT NULL,
            agent_id TEXT NOT NULL,
            event_id TEXT NOT NULL,
            record TEXT NOT NULL
        )""",
        "CREATE INDEX audit_by_event ON audit (event_id, seq)",
    ),
    # 2: an event's request (immutable, possibly megabytes of manifests) apart from its
    # progress (small, rewritten at every report), so a report never re-reads or re-writes it.
    2: (
        "ALTER TABLE events ADD COLUMN event TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE events ADD COLUMN progress TEXT NOT NULL DEFAULT ''",
        "UPDATE events SET event = json_extract(record, '$.event'),"
        " progress = json_remove(record, '$.event', '$.seq')",
        "ALTER TABLE events DROP COLUMN record",
    ),
    # 3: the audit log becomes a hash chain (transporter.security.audit_chain); its head (the
    # seq and hash of the last entry) is kept in a row of its own, moved by every append.
    3: (
        """CREATE TABLE audit_head (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            seq INTEGER NOT NULL,
            hash TEXT NOT NULL
        )""",
    ),
    # 4: API tokens (transporter.security.tokens): the record holds the hash of the token's
    # text, never the text.
    4: (
        """CREATE TABLE tokens (
            id TEXT PRIMARY KEY,
            created_at REAL NOT NULL,
            record TEXT NOT NULL
        ) WITHOUT ROWID""",
    ),
    # 5: revoked agent certificates (transporter.protocol.identity), by serial or fingerprint;
    # seq orders them, so that control planes ask only for the ones after the last they saw.
    5: (
        """CREATE TABLE revocations (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            key TEXT NOT NULL UNIQUE,
            record TEXT NOT NULL
        )""",
    ),
    # 6: values pinned by the first control plane (Store.pin): its keys' fingerprints.
    6: (
        """CREATE TABLE pins (
            name TEXT PRIMARY KEY,
            value TEXT NOT NULL
        ) WITHOUT ROWID""",
    ),
    # 7: the agent certificates the CA issued (bundle create), for bundle revoke to find.
    7: (
        """CREATE TABLE certificates (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            serial TEXT NOT NULL UNIQUE,
            record TEXT NOT NULL
        )""",
    ),
    # 8: rollouts and plans (transporter.protocol.rollout), each written whole over its
    # version (Store.save_rollout); seq and version are the store's, kept out of the body.
    8: (
        """CREATE TABLE rollouts (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,
            state TEXT NOT NULL,
            version INTEGER NOT NULL,
            body TEXT NOT NULL
        )""",
        "CREATE INDEX rollouts_by_state ON rollouts (state, seq)",
        "CREATE INDEX rollouts_by_kind ON rollouts (kind, state, seq)",
        f"CREATE INDEX rollouts_open ON rollouts (seq) WHERE state IN {OPEN_ROLLOUTS}",
    ),
    # 9: the event (megabytes of manifests, written once) in a table of its own, and its
    # rollout and time of acceptance beside its progress: a report rewrites a small row (SQLite
    # writes a changed row whole, the columns that did not change with it), and a rollout's
    # engine reads its children's progress (Store.event_progress) without their manifests.
    9: (
        """CREATE TABLE events_9 (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            target_agent TEXT NOT NULL,
            rollout_id TEXT NOT NULL DEFAULT '',
            state TEXT NOT NULL,
            created_at REAL NOT NULL DEFAULT 0,
            expires_at REAL NOT NULL,
            progress TEXT NOT NULL
        )""",
        "INSERT INTO events_9 (seq, id, target_agent, rollout_id, state, created_at, expires_at,"
        " progress) SELECT seq, id, target_agent,"
        " coalesce(json_extract(event, '$.rollout_id'), ''), state,"
        " coalesce(json_extract(event, '$.created_at'), 0), expires_at, progress"
        " FROM events ORDER BY seq",
        "CREATE TABLE event_bodies (seq INTEGER PRIMARY KEY, event TEXT NOT NULL)",
        "INSERT INTO event_bodies (seq, event) SELECT seq, event FROM events ORDER BY seq",
        # A seq is never given twice, not even one of a row gone: the counter moves over.
        "DELETE FROM sqlite_sequence WHERE name = 'events_9'",
        "INSERT INTO sqlite_sequence (name, seq) SELECT 'events_9', seq FROM sqlite_sequence"
        " WHERE name = 'events'",
        "DROP TABLE events",
        "ALTER TABLE events_9 RENAME TO events",
        *EVENT_INDEXES,
    ),
    # 10: a rollout's spec (its payload, a plan's apply's expects: up to tens of megabytes) in a
    # table of its own, written once: a save rewrites the rest only (SQLite writes a changed
    # row whole, the columns that did not change with it).
    10: (
        "CREATE TABLE rollout_specs (seq INTEGER PRIMARY KEY, spec TEXT NOT NULL)",
        "INSERT INTO rollout_specs (seq, spec) SELECT seq, json_extract(body, '$.spec')"
        " FROM rollouts",
        "UPDATE rollouts SET body = json_remove(body, '$.spec')",
    ),
}
"""Statements that bring the schema to each version; ``PRAGMA user_version`` says where it is."""


def chain_existing_audit(conn: sqlite3.Connection) -> None:
    """Migration 3: seal the entries written before the chain, in their order, and set the head.

    They are chained as they are found at the upgrade: the chain vouches for them from then on.
    Numbered 1, 2, 3 … as the chain wants (they already are, unless rows were deleted).
    """
    head = ChainHead()
    last = 0
    while True:
        rows = conn.execute(
            "SELECT seq, record FROM audit WHERE seq > ? ORDER BY seq LIMIT 1000", (last,)
        ).fetchall()
        if not rows:
            break
        for seq, text in rows:
            stored = audit_chain.seal(load(text, AuditEntry), head)
            # Only ever to a lower number, and the ones below are taken by the rows before.
            conn.execute(
                "UPDATE audit SET seq = ?, record = ? WHERE seq = ?",
                (stored.seq, dump(stored), seq),
            )
            head = audit_chain.head_of(stored)
            last = seq
    conn.execute("INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?)", (head.seq, head.hash))


AFTER_MIGRATION: dict[int, Callable[[sqlite3.Connection], None]] = {3: chain_existing_audit}
"""Work in Python after a version's statements."""


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    with write(conn):
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"SQLite store {path} has schema version {version}; this transporter knows"
                f" up to {SCHEMA_VERSION} (written by a newer version?)"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[target]:
                conn.execute(statement)
            after = AFTER_MIGRATION.get(target)
            if after is not None:
                after(conn)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
