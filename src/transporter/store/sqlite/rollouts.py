"""The SQLite store's rollouts: each a row of its changing part (:class:`RolloutPart`), written
over the version it was read at, and its spec in a row of its own, written once, at creation.

``BEGIN IMMEDIATE`` holds the file's write lock from the version's check to the commit, so of
two saves from one version (tasks, or processes on the file) exactly one applies. A rollout's
creation is synced to disk before it returns, as an event's acceptance is; a save is synced when
it carries audit entries (a decision someone was told about: approved, cancelled ...), and
otherwise with the next synced commit, as progress reports are.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from transporter.protocol.model import AuditEntry
from transporter.protocol.rollout import RolloutKind, RolloutRecord, RolloutState
from transporter.store.base import Page, RolloutConflict, StoreError
from transporter.store.json_rows import dump
from transporter.store.paging import clamp_limit, cursor_seq, page
from transporter.store.rollout_rows import (
    NumberedPart,
    RolloutTexts,
    SpecChanged,
    numbered,
    part_text,
    same_request,
)
from transporter.store.sqlite.audit import AuditAppender
from transporter.store.sqlite.connection import SQLiteConnection
from transporter.store.sqlite.schema import OPEN_ROLLOUTS, SEQ_END
from transporter.store.sqlite.transaction import read, rowid, write

type Row = tuple[int, int, str, str]
"""``seq, version, id, body`` of a stored rollout."""


class SQLiteRollouts(SQLiteConnection):
    async def create_rollout(
        self, record: RolloutRecord, audit: AuditEntry
    ) -> tuple[RolloutRecord, bool]:
        return await self._call(_create, self._rollouts, record, audit)

    async def get_rollout(self, rollout_id: str) -> RolloutRecord | None:
        return await self._call(_get, self._rollouts, rollout_id)

    async def save_rollout(
        self, record: RolloutRecord, audits: Sequence[AuditEntry] = ()
    ) -> RolloutRecord | None:
        return await self._call(_save, self._rollouts, record, list(audits))

    async def list_rollouts(
        self,
        *,
        state: RolloutState | None = None,
        kind: RolloutKind | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[RolloutRecord]:
        before = cursor_seq(cursor, below=SEQ_END)
        return await self._call(_list, self._rollouts, state, kind, clamp_limit(limit), before)

    async def open_rollouts(self) -> list[str]:
        return await self._call(_open)


def _create(
    conn: sqlite3.Connection,
    rollouts: RolloutTexts,
    record: RolloutRecord,
    audit: AuditEntry,
) -> tuple[RolloutRecord, bool]:
    with write(conn, durable=True):
        existing = _get(conn, rollouts, record.spec.id)
        if existing is not None:
            if same_request(existing.spec, record.spec):
                return existing, False
            raise RolloutConflict(record.spec.id)
        spec_text, text = dump(record.spec), part_text(record)
        cur = conn.execute(
            "INSERT INTO rollouts (id, kind, state, version, body) VALUES (?, ?, ?, 1, ?)",
            (record.spec.id, record.spec.kind.value, record.state.value, text),
        )
        conn.execute("INSERT INTO rollout_specs (seq, spec) VALUES (?, ?)", (rowid(cur), spec_text))
        audit_log = AuditAppender(conn)
        audit_log.append(audit)
        audit_log.finish()
    rollouts.wrote_spec(record.spec, spec_text)
    rollouts.wrote_part(record.spec.id, text, NumberedPart.of(record))
    return numbered(record, rowid(cur), 1), True


def _save(
    conn: sqlite3.Connection,
    rollouts: RolloutTexts,
    record: RolloutRecord,
    audits: list[AuditEntry],
) -> RolloutRecord | None:
    """Writes the part that changes; the spec, written once, is compared, not written."""
    rollouts.check(record)
    spec, text = record.spec, part_text(record)
    with write(conn, durable=bool(audits)):
        row = conn.execute(
            "UPDATE rollouts SET state = ?, version = version + 1, body = ?"
            " WHERE id = ? AND version = ? AND kind = ? RETURNING seq, version",
            (record.state.value, text, spec.id, record.version, spec.kind.value),
        ).fetchone()
        if row is None:
            found = conn.execute("SELECT kind FROM rollouts WHERE id = ?", (spec.id,)).fetchone()
            if found is not None and found[0] != spec.kind.value:
                raise SpecChanged(spec.id, f"kind {spec.kind.value!r}, stored {found[0]!r}")
            return None
        audit_log = AuditAppender(conn)
        for audit in audits:
            audit_log.append(audit)
        audit_log.finish()
    rollouts.wrote_part(spec.id, text, NumberedPart.of(record))
    return numbered(record, int(row[0]), int(row[1]))


def _records(
    conn: sqlite3.Connection, rollouts: RolloutTexts, rows: list[Row]
) -> list[RolloutRecord]:
    """The records of ``rows``: their specs from ``rollouts``, read (in one statement) only
    for those not kept decoded."""
    specs = {row[2]: rollouts.spec(row[2]) for row in rows}
    unread = [rollout_id for rollout_id, spec in specs.items() if spec is None]
    if unread:
        marks = ", ".join("?" * len(unread))
        joined = "rollouts AS r JOIN rollout_specs AS s ON s.seq = r.seq"
        query = f"SELECT r.id, s.spec FROM {joined} WHERE r.id IN ({marks})"  # noqa: S608
        for rollout_id, text in conn.execute(query, unread):
            specs[rollout_id] = rollouts.read_spec(rollout_id, text)
    out = []
    for seq, version, rollout_id, text in rows:
        spec = specs[rollout_id]
        if spec is None:
            raise StoreError(f"rollout {rollout_id!r} has no spec in the SQLite store")
        out.append(rollouts.part(rollout_id, text).record(spec, seq, version))
    return out


def _get(conn: sqlite3.Connection, rollouts: RolloutTexts, rollout_id: str) -> RolloutRecord | None:
    row = conn.execute(
        "SELECT seq, version, id, body FROM rollouts WHERE id = ?", (rollout_id,)
    ).fetchone()
    return None if row is None else _records(conn, rollouts, [row])[0]


def _list(
    conn: sqlite3.Connection,
    rollouts: RolloutTexts,
    state: RolloutState | None,
    kind: RolloutKind | None,
    limit: int,
    before: int | None,
) -> Page[RolloutRecord]:
    clauses: list[str] = []
    params: list[object] = []
    if kind is not None:
        clauses.append("kind = ?")
        params.append(kind.value)
    if state is not None:
        clauses.append("state = ?")
        params.append(state.value)
    if before is not None:
        clauses.append("seq < ?")
        params.append(before)
    where = " AND ".join(clauses) or "1"
    # Only the constant fragments above are interpolated; every value is a bound parameter.
    query = f"SELECT seq, version, id, body FROM rollouts WHERE {where} ORDER BY seq DESC LIMIT ?"  # noqa: S608
    with read(conn):
        rows = conn.execute(query, (*params, limit + 1)).fetchall()
        records = _records(conn, rollouts, rows)
    return page(records, limit, lambda record: record.seq)


def _open(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute(
        f"SELECT id FROM rollouts WHERE state IN {OPEN_ROLLOUTS} ORDER BY seq"  # noqa: S608
    ).fetchall()
    return [str(rollout_id) for (rollout_id,) in rows]
