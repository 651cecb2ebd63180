"""The SQLite store's events: accepting them, and reading them back.

Records are stored as the JSON of the one converter (:mod:`transporter.protocol.codec`) beside
the columns that queries need: the event (written once, in ``event_bodies``) apart from its
progress (:mod:`transporter.store.event_parts`), so that a report rewrites a small row.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

import attrs

from transporter.protocol.model import AuditEntry, Event, EventRecord, EventState
from transporter.protocol.status import accepted, advance
from transporter.store.base import (
    EventConflict,
    EventProgress,
    Page,
    Sending,
    StoreError,
    Submitted,
    TokenRevoked,
)
from transporter.store.event_parts import Brief, Progress, event_progress
from transporter.store.json_rows import dump
from transporter.store.paging import clamp_limit, cursor_seq, page
from transporter.store.sending import each_item
from transporter.store.sqlite.audit import AuditAppender
from transporter.store.sqlite.cache import EventCache
from transporter.store.sqlite.connection import SQLiteConnection
from transporter.store.sqlite.credentials import token_revoked
from transporter.store.sqlite.schema import OPEN, SEQ_END
from transporter.store.sqlite.transaction import read, rowid, write

JOINED = "events AS e JOIN event_bodies AS b ON b.seq = e.seq"
"""Events with their bodies (the event's JSON: its manifests), for the reads that send them."""

CHUNK = 500
"""Ids in one ``IN (...)`` list before its padding to 512 (within the 999 bound parameters of
any SQLite)."""


class SQLiteEvents(SQLiteConnection):
    async def submit(self, event: Event, audit: AuditEntry) -> tuple[EventRecord, bool]:
        return await self._call(_submit, self._events, event, audit)

    async def submit_many(
        self,
        items: Sequence[tuple[Event, AuditEntry]],
        *,
        sending: Sequence[Sending | None] = (),
        tokens: Sequence[str | None] = (),
    ) -> list[Submitted]:
        return await self._call(
            _submit_many, self._events, list(items), list(sending), list(tokens)
        )

    async def get_event(self, event_id: str) -> EventRecord | None:
        return await self._call(get_event, self._events, event_id)

    async def get_events(self, event_ids: Sequence[str]) -> list[EventRecord | None]:
        return await self._call(_get_events, self._events, list(event_ids))

    async def event_progress(self, event_ids: Sequence[str]) -> list[EventProgress | None]:
        return await self._call(_event_progress, list(event_ids))

    async def list_events(
        self,
        *,
        agent: str | None = None,
        state: EventState | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[EventRecord]:
        before = cursor_seq(cursor, below=SEQ_END)
        return await self._call(
            _list_events, self._events, agent, state, clamp_limit(limit), before
        )

    async def outbox(
        self, agent_id: str, *, after: int = 0, limit: int = 100
    ) -> list[tuple[int, Event]]:
        return await self._call(_outbox, self._events, agent_id, after, clamp_limit(limit))

    async def agents_with_unfinished(self, agent_ids: Sequence[str]) -> set[str]:
        """One statement: an index probe per agent (``events_open_by_agent``), which stops at
        its first unfinished event."""
        if not agent_ids:
            return set()
        return await self._call(_agents_with_unfinished, json.dumps(list(agent_ids)))

    async def expiring(self, now: float, *, limit: int = 100) -> list[str]:
        return await self._call(_expiring, now, clamp_limit(limit))

    async def count_unfinished(self) -> dict[EventState, int]:
        return await self._call(_count_unfinished)


def _submit(
    conn: sqlite3.Connection, events: EventCache, event: Event, audit: AuditEntry
) -> tuple[EventRecord, bool]:
    (result,) = _submit_many(conn, events, [(event, audit)], [], [])
    if isinstance(result, StoreError):
        raise result
    return result


def _submit_many(
    conn: sqlite3.Connection,
    events: EventCache,
    items: Sequence[tuple[Event, AuditEntry]],
    sending: Sequence[Sending | None],
    tokens: Sequence[str | None],
) -> list[Submitted]:
    """All in one transaction, synced once: a batch costs one disk flush, not one each. Each
    item's token is looked up in it (once for the items of one token). What it wrote is kept
    in ``events`` once it is committed (a rolled-back batch leaves nothing there)."""
    results: list[Submitted] = []
    sends = each_item(sending, len(items))
    revoked: dict[str, bool] = {}
    written: list[tuple[Event, str, Progress]] = []
    with write(conn, durable=True):
        audit_log = AuditAppender(conn)
        for (event, audit), send, token in zip(
            items, sends, each_item(tokens, len(items)), strict=True
        ):
            if token is not None:
                if token not in revoked:
                    revoked[token] = token_revoked(conn, token)
                if revoked[token]:
                    results.append(TokenRevoked(token))
                    continue
            results.append(_submit_one(conn, events, audit_log, event, audit, send, written))
        audit_log.finish()
    for event, text, stored in written:
        events.put(event)
        events.wrote(event.id, text, stored)
    return results


def _submit_one(
    conn: sqlite3.Connection,
    events: EventCache,
    audit_log: AuditAppender,
    event: Event,
    audit: AuditEntry,
    sending: Sending | None,
    written: list[tuple[Event, str, Progress]],
) -> tuple[EventRecord, bool] | EventConflict:
    progress = accepted(EventRecord(event=event, seq=0))
    sent = None
    if sending is not None and not _unfinished_after(conn, event.target_agent, sending.after):
        sent = advance(progress, sending.update)
    progress = sent or progress
    stored = Progress.of(progress)
    text = dump(stored)
    # One statement for a new event; an id taken already is left as it is, and uses up no
    # ``seq`` (``ON CONFLICT DO NOTHING`` would: AUTOINCREMENT counts the rows it skips).
    cur = conn.execute(
        "INSERT INTO events"
        " (id, target_agent, rollout_id, state, created_at, expires_at, progress)"
        " SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 WHERE NOT EXISTS (SELECT 1 FROM events WHERE id = ?1)",
        (
            event.id,
            event.target_agent,
            event.rollout_id,
            progress.state.value,
            event.created_at,
            event.expires_at,
            text,
        ),
    )
    if cur.rowcount == 0:
        existing = get_event(conn, events, event.id)
        if existing is None:  # its row without its body: the batch is not written
            raise StoreError(f"event {event.id} is in the SQLite store without its body")
        if existing.event.same_request(event):
            return existing, False
        return EventConflict(event.id)
    conn.execute("INSERT INTO event_bodies (seq, event) VALUES (?, ?)", (rowid(cur), dump(event)))
    audit_log.append(audit)
    if sent is not None and sending is not None:
        audit_log.append(sending.audit)
    written.append((event, text, stored))
    return attrs.evolve(progress, seq=rowid(cur)), True


def _unfinished_after(conn: sqlite3.Connection, agent_id: str, after: int) -> bool:
    """Whether ``agent_id`` may have an unfinished event its connection has not read: one
    after ``seq`` ``after`` (one index probe: ``events_open_by_agent``), or any when the
    file's last ``seq`` is below ``after`` (it went back: a file restored from a backup)."""
    last, found = conn.execute(
        "SELECT (SELECT seq FROM sqlite_sequence WHERE name = 'events'), EXISTS (SELECT 1"  # noqa: S608
        f" FROM events WHERE target_agent = ? AND state IN {OPEN} AND seq > ?)",
        (agent_id, after),
    ).fetchone()
    return bool((last or 0) < after or found)


def get_event(conn: sqlite3.Connection, events: EventCache, event_id: str) -> EventRecord | None:
    """The record of ``event_id``; the event itself (manifests: up to megabytes) is read and
    decoded only when it is not in ``events`` already (it never changes once stored)."""
    row = conn.execute("SELECT seq, progress FROM events WHERE id = ?", (event_id,)).fetchone()
    if row is None:
        return None
    seq, progress_text = row
    event = events.get(event_id)
    if event is None:
        found = conn.execute("SELECT event FROM event_bodies WHERE seq = ?", (seq,)).fetchone()
        if found is None:
            return None
        event = events.read(event_id, found[0])
    return events.progress(event_id, progress_text).record(event, seq)


def _get_events(
    conn: sqlite3.Connection, events: EventCache, event_ids: list[str]
) -> list[EventRecord | None]:
    """One read transaction (:func:`records_of`)."""
    with read(conn):
        return records_of(conn, events, event_ids)


def records_of(
    conn: sqlite3.Connection, events: EventCache, event_ids: Sequence[str]
) -> list[EventRecord | None]:
    """The records of ``event_ids``, in the caller's transaction: ``IN`` lists of at most
    :data:`CHUNK` ids, progress first, then the events that are not decoded already (manifests
    are read only when needed)."""
    found: dict[str, tuple[int, str]] = {}
    for chunk in _chunks(list(dict.fromkeys(event_ids))):
        marks = ", ".join("?" * len(chunk))
        query = f"SELECT id, seq, progress FROM events WHERE id IN ({marks})"  # noqa: S608
        for event_id, seq, text in conn.execute(query, chunk):
            found[event_id] = (seq, text)
    known = {event_id: events.get(event_id) for event_id in found}  # held: none evicted
    ids = {found[event_id][0]: event_id for event_id, event in known.items() if event is None}
    for seqs in _chunks(list(ids)):
        marks = ", ".join("?" * len(seqs))
        query = f"SELECT seq, event FROM event_bodies WHERE seq IN ({marks})"  # noqa: S608
        for seq, text in conn.execute(query, seqs):
            known[ids[seq]] = events.read(ids[seq], text)
    out: list[EventRecord | None] = []
    for event_id in event_ids:
        row, event = found.get(event_id), known.get(event_id)
        if row is None or event is None:
            out.append(None)
        else:
            out.append(events.progress(event_id, row[1]).record(event, row[0]))
    return out


def _event_progress(conn: sqlite3.Connection, event_ids: list[str]) -> list[EventProgress | None]:
    """One read transaction of the columns :class:`EventProgress` needs (never ``event``)."""
    found: dict[str, EventProgress] = {}
    with read(conn):
        for chunk in _chunks(list(dict.fromkeys(event_ids))):
            marks = ", ".join("?" * len(chunk))
            columns = "id, target_agent, rollout_id, created_at, expires_at, progress"
            query = f"SELECT {columns} FROM events WHERE id IN ({marks})"  # noqa: S608
            for event_id, agent, rollout_id, created_at, expires_at, text in conn.execute(
                query, chunk
            ):
                brief = Brief(agent, rollout_id, created_at, expires_at)
                found[event_id] = event_progress(event_id, brief, text)
    return [found.get(event_id) for event_id in event_ids]


def _chunks[T](ids: list[T]) -> list[list[T]]:
    """``ids`` in chunks of :data:`CHUNK` at most, for ``IN`` lists, each padded to a power of
    two with its last id (an ``IN`` list takes it once): a few statement texts, which SQLite's
    statement cache keeps, not one for every length a batch can have."""
    chunks = [ids[start : start + CHUNK] for start in range(0, len(ids), CHUNK)]
    return [
        chunk + chunk[-1:] * ((1 << (len(chunk) - 1).bit_length()) - len(chunk)) for chunk in chunks
    ]


def _record(events: EventCache, row: tuple[int, str, str, str]) -> EventRecord:
    seq, event_id, event_text, progress_text = row
    event = events.get(event_id) or events.read(event_id, event_text)
    return events.progress(event_id, progress_text).record(event, seq)


def _list_events(
    conn: sqlite3.Connection,
    events: EventCache,
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
        clauses.append("e.seq < ?")
        params.append(before)
    where = " AND ".join(clauses) or "1"
    # Only the constant fragments above are interpolated; every value is a bound parameter.
    query = (
        f"SELECT e.seq, e.id, b.event, e.progress FROM {JOINED}"  # noqa: S608
        f" WHERE {where} ORDER BY e.seq DESC LIMIT ?"
    )
    rows = conn.execute(query, (*params, limit + 1)).fetchall()
    records = [_record(events, row) for row in rows]
    return page(records, limit, lambda record: record.seq)


def _outbox(
    conn: sqlite3.Connection, events: EventCache, agent_id: str, after: int, limit: int
) -> list[tuple[int, Event]]:
    rows = conn.execute(
        f"SELECT e.seq, e.id, b.event FROM {JOINED}"  # noqa: S608
        f" WHERE e.target_agent = ? AND e.state IN {OPEN} AND e.seq > ? ORDER BY e.seq LIMIT ?",
        (agent_id, after, limit),
    ).fetchall()
    return [
        (seq, events.get(event_id) or events.read(event_id, text)) for seq, event_id, text in rows
    ]


def _agents_with_unfinished(conn: sqlite3.Connection, agent_ids: str) -> set[str]:
    rows = conn.execute(
        "SELECT value FROM json_each(?) WHERE EXISTS (SELECT 1 FROM events"  # noqa: S608
        f" WHERE target_agent = value AND state IN {OPEN})",
        (agent_ids,),
    ).fetchall()
    return {str(agent_id) for (agent_id,) in rows}


def _expiring(conn: sqlite3.Connection, now: float, limit: int) -> list[str]:
    rows = conn.execute(
        f"SELECT id FROM events WHERE state IN {OPEN} AND expires_at <= ?"  # noqa: S608
        " ORDER BY expires_at, seq LIMIT ?",
        (now, limit),
    ).fetchall()
    return [str(event_id) for (event_id,) in rows]


def _count_unfinished(conn: sqlite3.Connection) -> dict[EventState, int]:
    rows = conn.execute(
        f"SELECT state, count(*) FROM events WHERE state IN {OPEN} GROUP BY state"  # noqa: S608
    ).fetchall()
    return {EventState(state): int(count) for state, count in rows}
