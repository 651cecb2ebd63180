"""The SQLite store's credentials: API tokens, revoked and issued agent certificates, pins.

Each change is written with its audit entry in one durable transaction.
"""

from __future__ import annotations

import sqlite3

import attrs

from transporter.protocol.identity import IssuedCertificate, Revocation
from transporter.protocol.model import AuditEntry
from transporter.security.tokens import TokenRecord
from transporter.store.base import TokenConflict
from transporter.store.json_rows import dump, load
from transporter.store.sqlite.audit import append_audit
from transporter.store.sqlite.connection import SQLiteConnection
from transporter.store.sqlite.transaction import rowid, write


class SQLiteCredentials(SQLiteConnection):
    async def create_token(self, record: TokenRecord, audit: AuditEntry) -> None:
        await self._call(_create_token, record, audit)

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

    async def pin(self, name: str, value: str) -> str:
        return await self._call(_pin, name, value)


# --- tokens ----------------------------------------------------------------------------------


def _create_token(conn: sqlite3.Connection, record: TokenRecord, audit: AuditEntry) -> None:
    with write(conn, durable=True):
        if _get_token(conn, record.id) is not None:
            raise TokenConflict(record.id)
        conn.execute(
            "INSERT INTO tokens (id, created_at, record) VALUES (?, ?, ?)",
            (record.id, record.created_at, dump(record)),
        )
        append_audit(conn, audit)


def _get_token(conn: sqlite3.Connection, token_id: str) -> TokenRecord | None:
    row = conn.execute("SELECT record FROM tokens WHERE id = ?", (token_id,)).fetchone()
    return None if row is None else load(row[0], TokenRecord)


def token_revoked(conn: sqlite3.Connection, token_id: str) -> bool:
    """Whether the token ``token_id`` is revoked, or not stored (a submission's check)."""
    record = _get_token(conn, token_id)
    return record is None or record.revoked


def _list_tokens(conn: sqlite3.Connection) -> list[TokenRecord]:
    rows = conn.execute("SELECT record FROM tokens ORDER BY created_at, id").fetchall()
    return [load(text, TokenRecord) for (text,) in rows]


def _revoke_token(
    conn: sqlite3.Connection, token_id: str, at: float, audit: AuditEntry
) -> tuple[TokenRecord, bool] | None:
    with write(conn, durable=True):
        record = _get_token(conn, token_id)
        if record is None:
            return None
        if record.revoked:
            return record, False
        record = attrs.evolve(record, revoked_at=at)
        conn.execute("UPDATE tokens SET record = ? WHERE id = ?", (dump(record), token_id))
        append_audit(conn, audit)
        return record, True


# --- certificates: revoked and issued --------------------------------------------------------


def _revoke_certificate(
    conn: sqlite3.Connection, revocation: Revocation, audit: AuditEntry
) -> tuple[Revocation, bool]:
    with write(conn, durable=True):
        row = conn.execute(
            "SELECT seq, record FROM revocations WHERE key = ?", (revocation.key,)
        ).fetchone()
        if row is not None:
            return attrs.evolve(load(row[1], Revocation), seq=row[0]), False
        cur = conn.execute(
            "INSERT INTO revocations (key, record) VALUES (?, ?)",
            (revocation.key, dump(attrs.evolve(revocation, seq=0))),
        )
        append_audit(conn, audit)
        return attrs.evolve(revocation, seq=rowid(cur)), True


def _revocations(conn: sqlite3.Connection, after: int) -> list[Revocation]:
    rows = conn.execute(
        "SELECT seq, record FROM revocations WHERE seq > ? ORDER BY seq", (after,)
    ).fetchall()
    return [attrs.evolve(load(text, Revocation), seq=seq) for seq, text in rows]


def _record_certificate(
    conn: sqlite3.Connection, certificate: IssuedCertificate, audit: AuditEntry
) -> None:
    with write(conn, durable=True):
        cur = conn.execute(
            "INSERT OR IGNORE INTO certificates (serial, record) VALUES (?, ?)",
            (certificate.serial, dump(attrs.evolve(certificate, seq=0))),
        )
        if cur.rowcount:
            append_audit(conn, audit)


def _issued_certificates(conn: sqlite3.Connection) -> list[IssuedCertificate]:
    rows = conn.execute("SELECT seq, record FROM certificates ORDER BY seq").fetchall()
    return [attrs.evolve(load(text, IssuedCertificate), seq=seq) for seq, text in rows]


# --- pins ------------------------------------------------------------------------------------


def _pin(conn: sqlite3.Connection, name: str, value: str) -> str:
    with write(conn, durable=True):
        conn.execute("INSERT OR IGNORE INTO pins (name, value) VALUES (?, ?)", (name, value))
        row = conn.execute("SELECT value FROM pins WHERE name = ?", (name,)).fetchone()
    return str(row[0])
