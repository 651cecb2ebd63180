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
from transporter.store.sqlite.events import get_event
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
    """All in one transaction: the control plane's writer batches what arrives together."""
    with write(conn):
        audit_log = AuditAppender(conn)
        results = [_update_one(conn, events, audit_log, *item) for item in items]
        audit_log.finish()
        return results


def _update_one(
    conn: sqlite3.Connection,
    events: EventCache,
    audit_log: AuditAppender,
    event_id: str,
    update: StatusUpdate,
    audit: AuditEntry | None,
) -> EventRecord | None:
    old = get_event(conn, events, event_id)
    if old is None:
        return None
    record = advance(old, update)
    if record is None:
        return None
    stored = Progress.of(record)
    text = dump(stored)
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
