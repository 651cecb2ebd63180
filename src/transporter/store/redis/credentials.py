"""The Redis store's credentials: API tokens, revoked and issued agent certificates, pins.

Each change is one script with its audit entry (see chain.py).
"""

from __future__ import annotations

from typing import Any, cast

import attrs

from transporter.protocol.identity import IssuedCertificate, Revocation
from transporter.protocol.model import AuditEntry
from transporter.security.tokens import TokenRecord
from transporter.store.base import TokenConflict
from transporter.store.json_rows import dump, dump_without_seq, load
from transporter.store.redis.connection import RedisConnection


class RedisCredentials(RedisConnection):
    # --- tokens ------------------------------------------------------------------------------

    async def create_token(self, record: TokenRecord, audit: AuditEntry) -> None:
        found = await self._write_token(record.id, "", dump(record), audit)
        if found is not None:
            raise TokenConflict(record.id)

    async def get_token(self, token_id: str) -> TokenRecord | None:
        async with self._guard():
            text = await self._client.hget(self._keys.tokens, token_id)
        return None if text is None else load(text, TokenRecord)

    async def list_tokens(self) -> list[TokenRecord]:
        async with self._guard():
            stored = await self._client.hgetall(self._keys.tokens)
        records = [load(text, TokenRecord) for text in stored.values()]
        return sorted(records, key=lambda record: (record.created_at, record.id))

    async def revoke_token(
        self, token_id: str, at: float, audit: AuditEntry
    ) -> tuple[TokenRecord, bool] | None:
        async with self._guard():
            text = await self._client.hget(self._keys.tokens, token_id)
        while text:  # again while another writer changed the record in between
            record = load(text, TokenRecord)
            if record.revoked:
                return record, False
            revoked = attrs.evolve(record, revoked_at=at)
            found = await self._write_token(token_id, text, dump(revoked), audit)
            if found is None:
                return revoked, True
            text = found
        return None

    async def _write_token(
        self, token_id: str, expected: str, new: str, audit: AuditEntry
    ) -> str | None:
        """Put ``new`` in place of ``expected`` ("": none) with ``audit``; ``None`` when done,
        else what was found instead (nothing written)."""
        async with self._guard():
            status, reply, _ = await self._chain.append(
                self._scripts.put_token, [self._keys.tokens], [token_id, expected, new], audit
            )
        return None if status == 1 else str(reply[1])

    # --- certificates: revoked and issued ----------------------------------------------------

    async def revoke_certificate(
        self, revocation: Revocation, audit: AuditEntry
    ) -> tuple[Revocation, bool]:
        keys = [self._keys.revoked, self._keys.revoked_seq]
        status, reply = await self._put_once(keys, revocation.key, revocation, audit)
        return load(reply[1], Revocation), status == 1

    async def revocations(self, *, after: int = 0) -> list[Revocation]:
        async with self._guard():
            reply: Any = await self._scripts.revocations(
                keys=[self._keys.revoked, self._keys.revoked_seq], args=[after]
            )
        found = [load(text, Revocation) for text in cast(list[str], reply)]
        return sorted((r for r in found if r.seq > after), key=lambda r: r.seq)

    async def record_certificate(self, certificate: IssuedCertificate, audit: AuditEntry) -> None:
        keys = [self._keys.certificates, self._keys.certificates_seq]
        await self._put_once(keys, certificate.serial, certificate, audit)

    async def issued_certificates(self) -> list[IssuedCertificate]:
        async with self._guard():
            stored: Any = await self._client.hvals(self._keys.certificates)
        found = [load(text, IssuedCertificate) for text in cast(list[str], stored)]
        return sorted(found, key=lambda c: c.seq)

    async def _put_once(
        self, keys: list[str], field: str, value: object, audit: AuditEntry
    ) -> tuple[int, list[Any]]:
        """Store ``value`` (with the seq the script assigns) under ``field`` of ``keys[0]``
        unless there is one there, with ``audit``: status 1 and the stored JSON, else 0 and
        the JSON found."""
        async with self._guard():
            status, reply, _ = await self._chain.append(
                self._scripts.put_once, keys, [field, dump_without_seq(value)], audit
            )
        return status, reply

    # --- pins --------------------------------------------------------------------------------

    async def pin(self, name: str, value: str) -> str:
        async with self._guard():
            await self._client.hsetnx(self._keys.pins, name, value)
            pinned = await self._client.hget(self._keys.pins, name)
        if pinned is None:  # only if someone deleted it in between: pin again
            return await self.pin(name, value)
        return pinned
