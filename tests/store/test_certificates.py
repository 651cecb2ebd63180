"""Issued agent certificates, in every store: recorded once each with their audit entry, listed
oldest first, and matched by ``bundle revoke`` by serial, fingerprint or a long prefix."""

from __future__ import annotations

import attrs
import pytest

from tests.bed.store_backends import Backend
from transporter.protocol.identity import (
    IssuedCertificate,
    NotACertificate,
    matching_certificates,
)
from transporter.protocol.model import AuditEntry
from transporter.store import Store, verify_audit

T0 = 1_700_000_000.5


def issued(serial: str, agent: str = "site-1", fingerprint: str = "") -> IssuedCertificate:
    return IssuedCertificate(
        serial=serial,
        fingerprint=fingerprint or (serial * 64)[:64],
        agent_id=agent,
        not_after=T0 + 86400,
        issued_at=T0,
        issued_by="ops@host",
    )


def audit_of(certificate: IssuedCertificate) -> AuditEntry:
    return AuditEntry(
        at=T0, action="certificate.issued", actor="ops@host", detail=certificate.serial
    )


async def test_certificates_are_recorded_once_each_in_order_and_audited(store: Store) -> None:
    assert await store.issued_certificates() == []
    one, two = issued("7e4f6d3a0fb2c1"), issued("9a41c7d2", "site-2")
    await store.record_certificate(one, audit_of(one))
    await store.record_certificate(two, audit_of(two))
    await store.record_certificate(one, audit_of(one))  # again: nothing new
    found = await store.issued_certificates()
    assert [c.serial for c in found] == ["7e4f6d3a0fb2c1", "9a41c7d2"]
    assert found[0].seq < found[1].seq
    assert found[0] == attrs.evolve(one, seq=found[0].seq)
    actions = [e.action for e in (await store.list_audit()).items]
    assert actions == ["certificate.issued", "certificate.issued"]
    result = await verify_audit(store)
    assert result.intact, result.describe()


async def test_recorded_certificates_survive_closing_and_opening_again(backend: Backend) -> None:
    async with backend.open() as store:
        await store.record_certificate(issued("abcdef0123"), audit_of(issued("abcdef0123")))
    async with backend.open() as store:
        assert [c.serial for c in await store.issued_certificates()] == ["abcdef0123"]


def test_a_certificate_is_named_by_serial_fingerprint_or_a_long_prefix() -> None:
    one = issued("7e4f6d3a0fb2c1a9", fingerprint="12" * 32)
    two = issued("7e4f6d3affff0000", fingerprint="34" * 32)
    both = [one, two]
    assert matching_certificates("7e4f6d3a0fb2c1a9", both) == ([one], False)
    assert matching_certificates("0x7E:4F:6D:3A:0F:B2:C1:A9", both) == ([one], False)
    assert matching_certificates("12" * 32, both) == ([one], False)
    assert matching_certificates("7e4f6d3a0fb2", both) == ([one], True)  # unambiguous prefix
    assert matching_certificates("3434343434", both) == ([two], True)
    assert matching_certificates("7e4f6d3a", both) == (both, True)  # ambiguous: both
    assert matching_certificates("7e4f6d", both) == ([], False)  # too short to be a prefix
    assert matching_certificates("deadbeef", both) == ([], False)  # never issued
    with pytest.raises(NotACertificate):
        matching_certificates("not-a-serial", both)
