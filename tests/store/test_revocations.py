"""Revoked agent certificates, in every store: kept once per certificate, in order, with their
audit entry, and seen by every control plane on the same store."""

from __future__ import annotations

from tests.bed.store_backends import Backend
from transporter.protocol.identity import Revocation
from transporter.protocol.model import AuditEntry
from transporter.store import Store, verify_audit

T0 = 1_700_000_000.5
FINGERPRINT = "ab" * 32


def audit_of(revocation: Revocation) -> AuditEntry:
    return AuditEntry(
        at=revocation.at,
        action="certificate.revoked",
        actor=revocation.by,
        detail=f"{revocation.kind} {revocation.value}",
    )


async def revoke(store: Store, revocation: Revocation) -> tuple[Revocation, bool]:
    return await store.revoke_certificate(revocation, audit_of(revocation))


async def test_revocations_get_growing_seqs_and_are_listed_oldest_first(store: Store) -> None:
    assert await store.revocations() == []
    first, created = await revoke(store, Revocation("serial", "1f2e", T0, by="ops@host"))
    assert created and first.seq >= 1
    assert first == Revocation("serial", "1f2e", T0, by="ops@host", seq=first.seq)
    second, created = await revoke(
        store, Revocation("fingerprint", FINGERPRINT, T0 + 1, reason="lost laptop")
    )
    assert created and second.seq > first.seq
    assert await store.revocations() == [first, second]
    assert await store.revocations(after=first.seq) == [second]
    assert await store.revocations(after=second.seq) == []


async def test_revoking_a_certificate_again_writes_nothing(store: Store) -> None:
    first, _ = await revoke(store, Revocation("serial", "abc", T0, by="one"))
    again, created = await revoke(store, Revocation("serial", "abc", T0 + 5, by="two"))
    assert not created
    assert again == first
    assert await store.revocations() == [first]
    page = await store.list_audit(limit=10)
    assert [entry.action for entry in page.items] == ["certificate.revoked"]
    assert page.items[0].actor == "one"


async def test_a_revocation_is_audited_on_the_chain(store: Store) -> None:
    await store.audit(AuditEntry(at=T0, action="agent.connected", agent_id="a"))
    await revoke(store, Revocation("serial", "abc", T0 + 1, by="ops"))
    await store.audit(AuditEntry(at=T0 + 2, action="agent.disconnected", agent_id="a"))
    result = await verify_audit(store)
    assert result.intact, result.describe()
    actions = [entry.action for entry in (await store.list_audit()).items]
    assert actions == ["agent.disconnected", "certificate.revoked", "agent.connected"]


async def test_every_store_on_the_same_data_sees_a_revocation(backend: Backend) -> None:
    """Two control planes (two stores open on one file or server): one revokes, the other
    finds it when it asks for what came after the last it saw."""
    async with backend.open() as one, backend.open() as two:
        before = await two.revocations()
        stored, _ = await revoke(one, Revocation("serial", "77", T0))
        seen = await two.revocations(after=max((r.seq for r in before), default=0))
        assert seen == [stored]


async def test_revocations_survive_closing_and_opening_again(backend: Backend) -> None:
    async with backend.open() as store:
        stored, _ = await revoke(store, Revocation("fingerprint", FINGERPRINT, T0))
    async with backend.open() as store:
        assert await store.revocations() == [stored]
