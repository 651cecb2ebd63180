"""The SQLite store's agent records."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from transporter.protocol.model import AgentRecord, AuditEntry
from transporter.store.json_rows import dump, load
from transporter.store.sqlite.audit import AuditAppender
from transporter.store.sqlite.connection import SQLiteConnection
from transporter.store.sqlite.transaction import write

_UPSERT = (
    "INSERT INTO agents (id, record) VALUES (?, ?)"
    " ON CONFLICT (id) DO UPDATE SET record = excluded.record"
)


class SQLiteAgents(SQLiteConnection):
    async def put_agent(self, record: AgentRecord) -> None:
        await self._call(_put_agent, record)

    async def put_agents(
        self, records: Sequence[AgentRecord], audits: Sequence[AuditEntry] = ()
    ) -> None:
        if records or audits:
            await self._call(_put_agents, list(records), list(audits))

    async def get_agent(self, agent_id: str) -> AgentRecord | None:
        return await self._call(_get_agent, agent_id)

    async def list_agents(self) -> list[AgentRecord]:
        return await self._call(_list_agents)


def _put_agent(conn: sqlite3.Connection, record: AgentRecord) -> None:
    with write(conn):
        conn.execute(_UPSERT, (record.info.id, dump(record)))


def _put_agents(
    conn: sqlite3.Connection, records: list[AgentRecord], audits: list[AuditEntry]
) -> None:
    """One transaction, one commit: the records (a later one of an agent wins) and the audit
    entries, chained in order."""
    with write(conn):
        conn.executemany(_UPSERT, [(record.info.id, dump(record)) for record in records])
        appender = AuditAppender(conn)
        for entry in audits:
            appender.append(entry)
        appender.finish()


def _get_agent(conn: sqlite3.Connection, agent_id: str) -> AgentRecord | None:
    row = conn.execute("SELECT record FROM agents WHERE id = ?", (agent_id,)).fetchone()
    return None if row is None else load(row[0], AgentRecord)


def _list_agents(conn: sqlite3.Connection) -> list[AgentRecord]:
    rows = conn.execute("SELECT record FROM agents ORDER BY id").fetchall()
    return [load(text, AgentRecord) for (text,) in rows]
