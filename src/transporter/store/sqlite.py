"""The embedded store: one SQLite file in WAL mode, so one control plane needs nothing else.

sqlite3 blocks, so every call runs in a worker thread through ``trio.to_thread.run_sync`` with a
dedicated ``CapacityLimiter(1)`` (one connection, used by one thread at a time) and a timeout.
Writes take the write lock up front (``BEGIN IMMEDIATE``), so a read-modify-write never has to
be retried. Records are stored as the JSON of the one converter (:mod:`transporter.protocol.codec`)
beside the columns that queries need.

The audit log is a hash chain (:mod:`transporter.protocol.audit_chain`). Every append, whichever
call makes it, reads the chain's head (table ``audit_head``), seals the entry after it and moves
the head inside the caller's write transaction, whose lock keeps every other writer of the file
(task or process) out until it commits: the chain cannot fork.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import trio

from transporter.protocol import audit_chain
from transporter.protocol.audit_chain import ChainHead
from transporter.protocol.identity import IssuedCertificate, Revocation
from transporter.protocol.model import (
    AgentRecord,
    AuditEntry,
    Event,
    EventRecord,
    EventState,
    Phase,
    ResourceResult,
    TimelineEntry,
)
from transporter.protocol.status import StatusUpdate, accepted, advance
from transporter.protocol.tokens import TokenRecord
from transporter.store.base import (
    EventConflict,
    Page,
    StoreError,
    StoreUnavailable,
    TokenConflict,
)
from transporter.store.files import prepare_private, tighten
from transporter.store.rows import Decoded, Recent, cursor_seq
from transporter.store.rows import clamp_limit as _limit
from transporter.store.rows import dump as _dump
from transporter.store.rows import load as _load
from transporter.store.rows import page as _page

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0
SCHEMA_VERSION = 7

# States whose events still need work. Constant text (no input of anybody's), used both in the
# partial indexes and in the queries, which must repeat it exactly for SQLite to use them.
_OPEN = "(" + ", ".join(f"'{state.value}'" for state in EventState if not state.terminal) + ")"

_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            target_agent TEXT NOT NULL,
            state TEXT NOT NULL,
            expires_at REAL NOT NULL,
            record TEXT NOT NULL
        )""",
        "CREATE INDEX events_by_agent ON events (target_agent, seq)",
        "CREATE INDEX events_by_state ON events (state, seq)",
        f"CREATE INDEX events_open_by_agent ON events (target_agent, seq) WHERE state IN {_OPEN}",
        f"CREATE INDEX events_open_by_expiry ON events (expires_at) WHERE state IN {_OPEN}",
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
    # 3: the audit log becomes a hash chain (transporter.protocol.audit_chain); its head (the
    # seq and hash of the last entry) is kept in a row of its own, moved by every append.
    3: (
        """CREATE TABLE audit_head (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            seq INTEGER NOT NULL,
            hash TEXT NOT NULL
        )""",
    ),
    # 4: API tokens (transporter.protocol.tokens): the record holds the hash of the token's
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
}
"""Statements that bring the schema to each version; ``PRAGMA user_version`` says where it is."""

_AFTER_MIGRATION: dict[int, Callable[[sqlite3.Connection], None]] = {}
"""Work in Python after a version's statements (filled in below, where its functions are)."""


class SQLiteStore:
    """The :class:`~transporter.store.base.Store` in one SQLite file. Open with :meth:`open`."""

    def __init__(self, conn: sqlite3.Connection, *, call_timeout: float) -> None:
        self._conn: sqlite3.Connection | None = conn
        self._timeout = call_timeout
        self._limiter = trio.CapacityLimiter(1)
        self._events = _EventCache()
        """Decoded events, used only from the worker thread (the limiter serialises it)."""

    @classmethod
    async def open(cls, path: Path, *, call_timeout: float = DEFAULT_TIMEOUT) -> SQLiteStore:
        """Open (and create or migrate) the file; the caller must :meth:`aclose` the store.

        Not under ``fail_after``: abandoning the thread could leak the connection it opens. It
        is bounded by ``busy_timeout`` instead (the only wait that can be long).
        """
        try:
            conn = await trio.to_thread.run_sync(_connect, path, round(call_timeout * 1000))
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open SQLite store {path}: {exc}") from exc
        except OSError as exc:
            raise StoreUnavailable(f"cannot create the folder of {path}: {exc}") from exc
        return cls(conn, call_timeout=call_timeout)

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        # Through the limiter, so that a call still running in its thread finishes first.
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(conn.close, limiter=self._limiter)

    async def _call[R](self, fn: Callable[..., R], *args: Any) -> R:
        conn = self._conn
        if conn is None:
            raise StoreUnavailable("the store is closed")
        try:
            with trio.fail_after(self._timeout):
                # abandon_on_cancel: the timeout must hold even while the thread is stuck. The
                # thread keeps the limiter until it ends, so nothing else uses the connection.
                return await trio.to_thread.run_sync(
                    fn, conn, *args, limiter=self._limiter, abandon_on_cancel=True
                )
        except trio.TooSlowError:
            raise StoreUnavailable(f"SQLite did not answer within {self._timeout} s") from None
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite: {exc}") from exc

    async def ping(self) -> None:
        await self._call(_ping)

    async def durability_warnings(self) -> list[str]:
        return []  # accepting commits with synchronous=FULL in WAL mode (see _connect)

    async def submit(self, event: Event, audit: AuditEntry) -> tuple[EventRecord, bool]:
        return await self._call(_submit, self._events, event, audit)

    async def submit_many(
        self, items: Sequence[tuple[Event, AuditEntry]]
    ) -> list[tuple[EventRecord, bool] | EventConflict]:
        return await self._call(_submit_many, self._events, list(items))

    async def update_many(
        self, items: Sequence[tuple[str, StatusUpdate, AuditEntry | None]]
    ) -> list[EventRecord | None]:
        return await self._call(_update_many, self._events, list(items))

    async def get_event(self, event_id: str) -> EventRecord | None:
        return await self._call(_get_event, self._events, event_id)

    async def list_events(
        self,
        *,
        agent: str | None = None,
        state: EventState | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[EventRecord]:
        return await self._call(
            _list_events, self._events, agent, state, _limit(limit), _cursor_seq(cursor)
        )

    async def update_event(
        self, event_id: str, update: StatusUpdate, *, audit: AuditEntry | None = None
    ) -> EventRecord | None:
        return await self._call(_update_event, self._events, event_id, update, audit)

    async def outbox(
        self, agent_id: str, *, after: int = 0, limit: int = 100
    ) -> list[tuple[int, Event]]:
        return await self._call(_outbox, self._events, agent_id, after, _limit(limit))

    async def expiring(self, now: float, *, limit: int = 100) -> list[str]:
        return await self._call(_expiring, now, _limit(limit))

    async def put_agent(self, record: AgentRecord) -> None:
        await self._call(_put_agent, record)

    async def get_agent(self, agent_id: str) -> AgentRecord | None:
        return await self._call(_get_agent, agent_id)

    async def list_agents(self) -> list[AgentRecord]:
        return await self._call(_list_agents)

    async def audit(self, entry: AuditEntry) -> AuditEntry:
        return await self._call(_audit, entry)

    async def list_audit(self, *, limit: int = 100, cursor: str | None = None) -> Page[AuditEntry]:
        return await self._call(_list_audit, _limit(limit), _cursor_seq(cursor))

    async def audit_after(self, after: int = 0, *, limit: int = 100) -> list[AuditEntry]:
        return await self._call(_audit_after, after, _limit(limit))

    async def audit_head(self) -> ChainHead:
        return await self._call(_stored_audit_head)

    async def create_token(self, record: TokenRecord, audit: AuditEntry) -> None:
        await self._call(_create_token, record, audit)

    async def pin(self, name: str, value: str) -> str:
        return await self._call(_pin, name, value)

    async def get_token(self, token_id: str) -> TokenRecord | None:
        return await self._call(_get_token, token_id)

    async def list_tokens(self) -> list[TokenRecord]:
        return await self._call(_list_tokens)

    async def revoke_token(
        self, token_id: str, at: float, audit: AuditEntry
    ) -> tuple[TokenRecord, bool] | None:
        return await self._call(_revoke_token, token_id, at, audit)

    async def revoke_certificate(
        self, revocation: Revocation, audit: AuditEntry
    ) -> tuple[Revocation, bool]:
        return await self._call(_revoke_certificate, revocation, audit)

    async def revocations(self, *, after: int = 0) -> list[Revocation]:
        return await self._call(_revocations, after)

    async def record_certificate(self, certificate: IssuedCertificate, audit: AuditEntry) -> None:
        await self._call(_record_certificate, certificate, audit)

    async def issued_certificates(self) -> list[IssuedCertificate]:
        return await self._call(_issued_certificates)


# --- opening ---------------------------------------------------------------------------------


def _connect(path: Path, busy_ms: int) -> sqlite3.Connection:
    prepare_private(path)
    conn = sqlite3.connect(path, check_same_thread=False, autocommit=True)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise StoreError(f"SQLite store {path}: journal_mode is {mode!r}, WAL is required")
        # In WAL mode, NORMAL syncs only at checkpoints: a power cut (not a kill -9: the WAL is
        # in the OS's cache by then) could lose transactions that were already committed. FULL
        # syncs the WAL at every commit. Accepting an event is FULL (see _write(durable=True)),
        # so it is on disk before the producer hears "202 accepted", as promised; progress
        # reports are NORMAL: one lost in a power cut leaves its event unfinished, so it is
        # delivered again and the agent answers with the result it recorded. Each FULL commit
        # also syncs every NORMAL one before it in the WAL.
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        _migrate(conn, path)
        tighten(path)  # the -wal and -shm files exist now
    except BaseException:
        conn.close()
        raise
    return conn


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    with _write(conn):
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"SQLite store {path} has schema version {version}; this transporter knows"
                f" up to {SCHEMA_VERSION} (written by a newer version?)"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[target]:
                conn.execute(statement)
            after = _AFTER_MIGRATION.get(target)
            if after is not None:
                after(conn)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


@contextmanager
def _write(conn: sqlite3.Connection, *, durable: bool = False) -> Iterator[None]:
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


# --- the work done in the worker thread ------------------------------------------------------


def _ping(conn: sqlite3.Connection) -> None:
    conn.execute("SELECT 1").fetchone()


def _submit(
    conn: sqlite3.Connection, events: _EventCache, event: Event, audit: AuditEntry
) -> tuple[EventRecord, bool]:
    (result,) = _submit_many(conn, events, [(event, audit)])
    if isinstance(result, EventConflict):
        raise result
    return result


def _submit_many(
    conn: sqlite3.Connection, events: _EventCache, items: Sequence[tuple[Event, AuditEntry]]
) -> list[tuple[EventRecord, bool] | EventConflict]:
    """All in one transaction, synced once: a batch costs one disk flush, not one each."""
    results: list[tuple[EventRecord, bool] | EventConflict] = []
    with _write(conn, durable=True):
        audit_log = _AuditAppender(conn)
        for event, audit in items:
            results.append(_submit_one(conn, events, audit_log, event, audit))
        audit_log.finish()
    return results


def _submit_one(
    conn: sqlite3.Connection,
    events: _EventCache,
    audit_log: _AuditAppender,
    event: Event,
    audit: AuditEntry,
) -> tuple[EventRecord, bool] | EventConflict:
    existing = _get_event(conn, events, event.id)
    if existing is not None:
        if existing.event.same_request(event):
            return existing, False
        return EventConflict(event.id)
    progress = accepted(EventRecord(event=event, seq=0))
    stored = _Progress.of(progress)
    text = _dump(stored)
    cur = conn.execute(
        "INSERT INTO events (id, target_agent, state, expires_at, event, progress)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (
            event.id,
            event.target_agent,
            EventState.QUEUED.value,
            event.expires_at,
            _dump(event),
            text,
        ),
    )
    audit_log.append(audit)
    events.put(event)
    events.wrote(event.id, text, stored)
    return attrs.evolve(progress, seq=_rowid(cur)), True


_RECORD_COLUMNS = "seq, id, event, progress"


def _record(events: _EventCache, row: tuple[int, str, str, str]) -> EventRecord:
    seq, event_id, event_text, progress_text = row
    event = events.get(event_id) or events.read(event_id, event_text)
    return events.progress(event_id, progress_text).record(event, seq)


def _get_event(conn: sqlite3.Connection, events: _EventCache, event_id: str) -> EventRecord | None:
    """The record of ``event_id``; the event itself (manifests: up to megabytes) is read and
    decoded only when it is not in ``events`` already (it never changes once stored)."""
    row = conn.execute("SELECT seq, progress FROM events WHERE id = ?", (event_id,)).fetchone()
    if row is None:
        return None
    seq, progress_text = row
    event = events.get(event_id)
    if event is None:
        found = conn.execute("SELECT event FROM events WHERE id = ?", (event_id,)).fetchone()
        if found is None:
            return None
        event = events.read(event_id, found[0])
    return events.progress(event_id, progress_text).record(event, seq)


def _list_events(
    conn: sqlite3.Connection,
    events: _EventCache,
    agent: str | None,
    state: EventState | None,
    limit: int,
    before: int | None,
) -> Page[EventRecord]:
    clauses: list[str] = []
    params: list[object] = []
    if agent is not None:
        clauses.append("target_agent = ?")
        params.append(agent)
    if state is not None:
        clauses.append("state = ?")
        params.append(state.value)
    if before is not None:
        clauses.append("seq < ?")
        params.append(before)
    where = " AND ".join(clauses) or "1"
    # Only the constant fragments above are interpolated; every value is a bound parameter.
    query = f"SELECT {_RECORD_COLUMNS} FROM events WHERE {where} ORDER BY seq DESC LIMIT ?"  # noqa: S608
    rows = conn.execute(query, (*params, limit + 1)).fetchall()
    records = [_record(events, row) for row in rows]
    return _page(records, limit, lambda record: record.seq)


def _update_event(
    conn: sqlite3.Connection,
    events: _EventCache,
    event_id: str,
    update: StatusUpdate,
    audit: AuditEntry | None,
) -> EventRecord | None:
    (result,) = _update_many(conn, events, [(event_id, update, audit)])
    return result


def _update_many(
    conn: sqlite3.Connection,
    events: _EventCache,
    items: Sequence[tuple[str, StatusUpdate, AuditEntry | None]],
) -> list[EventRecord | None]:
    """All in one transaction: the control plane's writer batches what arrives together."""
    with _write(conn):
        audit_log = _AuditAppender(conn)
        results = [_update_one(conn, events, audit_log, *item) for item in items]
        audit_log.finish()
        return results


def _update_one(
    conn: sqlite3.Connection,
    events: _EventCache,
    audit_log: _AuditAppender,
    event_id: str,
    update: StatusUpdate,
    audit: AuditEntry | None,
) -> EventRecord | None:
    old = _get_event(conn, events, event_id)
    if old is None:
        return None
    record = advance(old, update)
    if record is None:
        return None
    stored = _Progress.of(record)
    text = _dump(stored)
    if record.state is old.state:  # the phases of a running event: no index to touch
        conn.execute("UPDATE events SET progress = ? WHERE id = ?", (text, event_id))
    else:
        conn.execute(
            "UPDATE events SET state = ?, progress = ? WHERE id = ?",
            (record.state.value, text, event_id),
        )
    events.wrote(event_id, text, stored)
    if audit is not None:
        audit_log.append(audit)
    return record


def _outbox(
    conn: sqlite3.Connection, events: _EventCache, agent_id: str, after: int, limit: int
) -> list[tuple[int, Event]]:
    rows = conn.execute(
        f"SELECT seq, id, event FROM events WHERE target_agent = ? AND state IN {_OPEN}"  # noqa: S608
        " AND seq > ? ORDER BY seq LIMIT ?",
        (agent_id, after, limit),
    ).fetchall()
    return [
        (seq, events.get(event_id) or events.read(event_id, text)) for seq, event_id, text in rows
    ]


def _expiring(conn: sqlite3.Connection, now: float, limit: int) -> list[str]:
    rows = conn.execute(
        f"SELECT id FROM events WHERE state IN {_OPEN} AND expires_at <= ?"  # noqa: S608
        " ORDER BY expires_at, seq LIMIT ?",
        (now, limit),
    ).fetchall()
    return [str(event_id) for (event_id,) in rows]


def _put_agent(conn: sqlite3.Connection, record: AgentRecord) -> None:
    with _write(conn):
        conn.execute(
            "INSERT INTO agents (id, record) VALUES (?, ?)"
            " ON CONFLICT (id) DO UPDATE SET record = excluded.record",
            (record.info.id, _dump(record)),
        )


def _get_agent(conn: sqlite3.Connection, agent_id: str) -> AgentRecord | None:
    row = conn.execute("SELECT record FROM agents WHERE id = ?", (agent_id,)).fetchone()
    return None if row is None else _load(row[0], AgentRecord)


def _list_agents(conn: sqlite3.Connection) -> list[AgentRecord]:
    rows = conn.execute("SELECT record FROM agents ORDER BY id").fetchall()
    return [_load(text, AgentRecord) for (text,) in rows]


def _audit(conn: sqlite3.Connection, entry: AuditEntry) -> AuditEntry:
    with _write(conn):
        return _append_audit(conn, entry)


def _append_audit(conn: sqlite3.Connection, entry: AuditEntry) -> AuditEntry:
    """Seal ``entry`` after the chain head and move the head, inside the caller's write
    transaction (see :class:`_AuditAppender`)."""
    appender = _AuditAppender(conn)
    stored = appender.append(entry)
    appender.finish()
    return stored


class _AuditAppender:
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
        self._conn.execute(
            "INSERT INTO audit (seq, at, action, agent_id, event_id, record)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (stored.seq, stored.at, stored.action, stored.agent_id, stored.event_id, _dump(stored)),
        )
        self._head = audit_chain.head_of(stored)
        return stored

    def finish(self) -> None:
        """Write the new head (call it last in the transaction)."""
        if self._head is not None:
            self._conn.execute(
                "UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1",
                (self._head.seq, self._head.hash),
            )


def _audit_head(conn: sqlite3.Connection) -> ChainHead | None:
    row = conn.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
    return None if row is None else ChainHead(int(row[0]), str(row[1]))


def _stored_audit_head(conn: sqlite3.Connection) -> ChainHead:
    return _audit_head(conn) or ChainHead()


def _audit_after(conn: sqlite3.Connection, after: int, limit: int) -> list[AuditEntry]:
    rows = conn.execute(
        "SELECT record FROM audit WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
    ).fetchall()
    return [_load(text, AuditEntry) for (text,) in rows]


def _chain_existing_audit(conn: sqlite3.Connection) -> None:
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
            stored = audit_chain.seal(_load(text, AuditEntry), head)
            # Only ever to a lower number, and the ones below are taken by the rows before.
            conn.execute(
                "UPDATE audit SET seq = ?, record = ? WHERE seq = ?",
                (stored.seq, _dump(stored), seq),
            )
            head = audit_chain.head_of(stored)
            last = seq
    conn.execute("INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?)", (head.seq, head.hash))


_AFTER_MIGRATION[3] = _chain_existing_audit


def _list_audit(conn: sqlite3.Connection, limit: int, before: int | None) -> Page[AuditEntry]:
    rows = conn.execute(
        "SELECT record FROM audit WHERE seq < ? ORDER BY seq DESC LIMIT ?",
        (before if before is not None else 2**63 - 1, limit + 1),
    ).fetchall()
    entries = [_load(text, AuditEntry) for (text,) in rows]
    return _page(entries, limit, lambda entry: entry.seq)


# --- tokens ----------------------------------------------------------------------------------


def _create_token(conn: sqlite3.Connection, record: TokenRecord, audit: AuditEntry) -> None:
    with _write(conn, durable=True):
        if _get_token(conn, record.id) is not None:
            raise TokenConflict(record.id)
        conn.execute(
            "INSERT INTO tokens (id, created_at, record) VALUES (?, ?, ?)",
            (record.id, record.created_at, _dump(record)),
        )
        _append_audit(conn, audit)


def _pin(conn: sqlite3.Connection, name: str, value: str) -> str:
    with _write(conn, durable=True):
        conn.execute("INSERT OR IGNORE INTO pins (name, value) VALUES (?, ?)", (name, value))
        row = conn.execute("SELECT value FROM pins WHERE name = ?", (name,)).fetchone()
    return str(row[0])


def _get_token(conn: sqlite3.Connection, token_id: str) -> TokenRecord | None:
    row = conn.execute("SELECT record FROM tokens WHERE id = ?", (token_id,)).fetchone()
    return None if row is None else _load(row[0], TokenRecord)


def _list_tokens(conn: sqlite3.Connection) -> list[TokenRecord]:
    rows = conn.execute("SELECT record FROM tokens ORDER BY created_at, id").fetchall()
    return [_load(text, TokenRecord) for (text,) in rows]


def _revoke_token(
    conn: sqlite3.Connection, token_id: str, at: float, audit: AuditEntry
) -> tuple[TokenRecord, bool] | None:
    with _write(conn, durable=True):
        record = _get_token(conn, token_id)
        if record is None:
            return None
        if record.revoked:
            return record, False
        record = attrs.evolve(record, revoked_at=at)
        conn.execute("UPDATE tokens SET record = ? WHERE id = ?", (_dump(record), token_id))
        _append_audit(conn, audit)
        return record, True


# --- revoked certificates --------------------------------------------------------------------


def _revoke_certificate(
    conn: sqlite3.Connection, revocation: Revocation, audit: AuditEntry
) -> tuple[Revocation, bool]:
    with _write(conn, durable=True):
        row = conn.execute(
            "SELECT seq, record FROM revocations WHERE key = ?", (revocation.key,)
        ).fetchone()
        if row is not None:
            return attrs.evolve(_load(row[1], Revocation), seq=row[0]), False
        cur = conn.execute(
            "INSERT INTO revocations (key, record) VALUES (?, ?)",
            (revocation.key, _dump(attrs.evolve(revocation, seq=0))),
        )
        _append_audit(conn, audit)
        return attrs.evolve(revocation, seq=_rowid(cur)), True


def _record_certificate(
    conn: sqlite3.Connection, certificate: IssuedCertificate, audit: AuditEntry
) -> None:
    with _write(conn, durable=True):
        cur = conn.execute(
            "INSERT OR IGNORE INTO certificates (serial, record) VALUES (?, ?)",
            (certificate.serial, _dump(attrs.evolve(certificate, seq=0))),
        )
        if cur.rowcount:
            _append_audit(conn, audit)


def _issued_certificates(conn: sqlite3.Connection) -> list[IssuedCertificate]:
    rows = conn.execute("SELECT seq, record FROM certificates ORDER BY seq").fetchall()
    return [attrs.evolve(_load(text, IssuedCertificate), seq=seq) for seq, text in rows]


def _revocations(conn: sqlite3.Connection, after: int) -> list[Revocation]:
    rows = conn.execute(
        "SELECT seq, record FROM revocations WHERE seq > ? ORDER BY seq", (after,)
    ).fetchall()
    return [attrs.evolve(_load(text, Revocation), seq=seq) for seq, text in rows]


# --- helpers ---------------------------------------------------------------------------------


def _rowid(cur: sqlite3.Cursor) -> int:
    if cur.lastrowid is None:
        raise StoreError("SQLite gave no rowid for an insert")
    return cur.lastrowid


@attrs.frozen
class _Progress:
    """What changes about an event as it goes: stored apart from the event itself."""

    state: EventState
    phase: Phase | None = None
    message: str = ""
    resources: tuple[ResourceResult, ...] = ()
    timeline: tuple[TimelineEntry, ...] = ()
    updated_at: float = 0.0

    @classmethod
    def of(cls, record: EventRecord) -> _Progress:
        return cls(
            record.state,
            record.phase,
            record.message,
            record.resources,
            record.timeline,
            record.updated_at,
        )

    def record(self, event: Event, seq: int) -> EventRecord:
        return EventRecord(
            event,
            seq,
            self.state,
            self.phase,
            self.message,
            self.resources,
            self.timeline,
            self.updated_at,
        )


EVENT_CACHE_BYTES = 32 * 1024 * 1024
"""Characters of manifests the store keeps decoded at most (an event may hold megabytes)."""


class _EventCache:
    """Events and progress decoded lately, by event id; used only from the store's one worker
    thread.

    Events never change once stored, so an event found here is always right (whichever process
    wrote the file). Progress does change: it is kept with the text it was decoded from, and
    used only when the text just read is that same text.
    """

    def __init__(
        self,
        size: int = 4096,
        progress_size: int = 4096,
        manifest_bytes: int = EVENT_CACHE_BYTES,
    ) -> None:
        # Events weigh their manifests' characters (an event may hold megabytes).
        self.events: Recent[Event] = Recent(size=size, weight=manifest_bytes)
        # Enough for the events a busy control plane has under way.
        self._progress = Decoded(_Progress, size=progress_size)

    def get(self, event_id: str) -> Event | None:
        return self.events.get(event_id)

    def put(self, event: Event) -> Event:
        """Keep ``event`` (one larger than the whole budget is not kept); returns it."""
        self.events.put(event.id, event, _manifest_bytes(event))
        return event

    def read(self, event_id: str, text: str) -> Event:
        """The event of row ``event_id``, stored as ``text``: kept under the row's id, which
        the event is made to carry. A row whose JSON names another id was written by someone
        else than us; it must not stand for that other event here (and its signature, which
        covers the id, no longer matches: its agent will refuse it)."""
        event = _load(text, Event)
        if event.id != event_id:
            log.warning("store: event row %r holds an event that says it is %r", event_id, event.id)
            event = attrs.evolve(event, id=event_id)
        return self.put(event)

    def progress(self, event_id: str, text: str) -> _Progress:
        """``text`` (an event's stored progress) decoded: from here when it was lately."""
        return self._progress.load(event_id, text)

    def wrote(self, event_id: str, text: str, progress: _Progress) -> None:
        """``progress`` was stored as ``text`` (in the transaction under way)."""
        self._progress.wrote(event_id, text, progress)


def _manifest_bytes(event: Event) -> int:
    return sum(len(manifest) for manifest in event.payload.manifests)


def _cursor_seq(cursor: str | None) -> int | None:
    return cursor_seq(cursor, below=2**63)
