"""The SQLite store's progress reports: an event's progress row, never its event, rewritten."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from transporter.protocol.model import AuditEntry, EventRecord
from transporter.protocol.status import StatusUpdate, advance
from transporter.store.event_parts import Progress
from transporter.store.json_rows import dump
from transporter.store.sqlite.audit import AuditAppender
from transporter.store.sqlite.cache import EventCache
from transporter.store.sqlite.connection import SQLiteConnection
from transporter.store.sqlite.events import records_of
from transporter.store.sqlite.transaction import write


class SQLiteProgress(SQLiteConnection):
    async def update_event(
        self, event_id: str, update: StatusUpdate, *, audit: AuditEntry | None = None
    ) -> EventRecord | None:
        (result,) = await self.update_many([(event_id, update, audit)])
        return result

    async def update_many(
        self, items: Sequence[tuple[str, StatusUpdate, AuditEntry | None]]
    ) -> list[EventRecord | None]:
        return await self._call(_update_many, self._events, list(items))


def _update_many(
    conn: sqlite3.Connection,
    events: EventCache,
    items: Sequence[tuple[str, StatusUpdate, AuditEntry | None]],
) -> list[EventRecord | None]:
    """All in one transaction: the control plane's writer batches what arrives together. The
    batch's events are read together (:func:`.events.records_of`); an event's updates in one
    batch (its first phases, reported in one message) are advanced one after another from that
    read, and its row is written once, with the last."""
    with write(conn):
        audit_log = AuditAppender(conn)
        # by event: the record as read, and as advanced so far (None: unchanged)
        ids = list(dict.fromkeys(event_id for event_id, _, _ in items))
        read: dict[str, tuple[EventRecord | None, EventRecord | None]] = {
            event_id: (record, None)
            for event_id, record in zip(ids, records_of(conn, events, ids), strict=True)
        }
        results: list[EventRecord | None] = []
        for event_id, update, audit in items:
            old, new = read[event_id]
            current = new or old
            record = None if current is None else advance(current, update)
            if record is not None:
                read[event_id] = (old, record)
                if audit is not None:
                    audit_log.append(audit)
            results.append(record)
        written = [
            (event_id, *_write_progress(conn, event_id, old, new))
            for event_id, (old, new) in read.items()
            if old is not None and new is not None
        ]
        audit_log.finish()
    for event_id, text, stored in written:  # kept once committed
        events.wrote(event_id, text, stored)
    return results


def _write_progress(
    conn: sqlite3.Connection, event_id: str, old: EventRecord, record: EventRecord
) -> tuple[str, Progress]:
    stored = Progress.of(record)
    text = dump(stored)
    if record.state is old.state:  # the phases of a running event: no index to touch
        conn.execute("UPDATE events SET progress = ? WHERE id = ?", (text, event_id))
    else:
        conn.execute(
            "UPDATE events SET state = ?, progress = ? WHERE id = ?",
            (record.state.value, text, event_id),
        )
    return text, stored
