"""The Redis store's audit log: a stream whose entry ``SEQ-0`` holds the sealed entry's JSON."""

from __future__ import annotations

from coredis.response.types import StreamEntry

from transporter.protocol.model import AuditEntry
from transporter.security import audit_chain
from transporter.security.audit_chain import ChainHead
from transporter.store.base import Page, StoreError
from transporter.store.json_rows import load
from transporter.store.paging import clamp_limit, cursor_seq, page
from transporter.store.redis.chain import chain_head
from transporter.store.redis.connection import RedisConnection
from transporter.store.redis.events import SEQ_END


class RedisAudit(RedisConnection):
    async def audit(self, entry: AuditEntry) -> AuditEntry:
        async with self._guard():
            _, _, sealed = await self._chain.append(self._scripts.audit, [], [], entry)
        return sealed

    async def list_audit(self, *, limit: int = 100, cursor: str | None = None) -> Page[AuditEntry]:
        limit = clamp_limit(limit)
        before = cursor_seq(cursor, below=SEQ_END)
        end = "+" if before is None else f"({before}-0"
        async with self._guard():
            found = await self._client.xrevrange(self._keys.audit, end, "-", count=limit + 1)
        entries = [_audit_entry(item) for item in found]
        return page(entries, limit, lambda entry: entry.seq)

    async def audit_after(self, after: int = 0, *, limit: int = 100) -> list[AuditEntry]:
        async with self._guard():
            found = await self._client.xrange(
                self._keys.audit, f"({max(after, 0)}-0", "+", count=clamp_limit(limit)
            )
        return [_audit_entry(item) for item in found]

    async def audit_head(self) -> ChainHead:
        async with self._guard():
            seq, hash_ = await self._client.mget([self._keys.audit_seq, self._keys.audit_head])
        return chain_head(seq or "0", hash_ or audit_chain.GENESIS)


def _audit_entry(item: StreamEntry) -> AuditEntry:
    text = item.field_values.get("entry")
    if text is None:
        raise StoreError(f"the audit stream's entry {item.identifier!s} holds no 'entry' field")
    return load(str(text), AuditEntry)
