"""Naming certificates and revoking them (:mod:`transporter.protocol.identity`): by serial or by
fingerprint."""

from __future__ import annotations

import pytest

from transporter.protocol.identity import (
    NotACertificate,
    PeerCertificate,
    Revocation,
    Revoked,
    parse_certificate_ref,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1f2E", ("serial", "1f2e")),
        ("0x00ab", ("serial", "ab")),
        ("0A:1B:2C", ("serial", "a1b2c")),
        ("AB" * 32, ("fingerprint", "ab" * 32)),
        (":".join(["cd"] * 32), ("fingerprint", "cd" * 32)),
    ],
)
def test_a_certificate_is_named_by_serial_or_fingerprint(
    text: str, expected: tuple[str, str]
) -> None:
    assert parse_certificate_ref(text) == expected


@pytest.mark.parametrize("text", ["", "xyz", "12 34", "a" * 41, "a" * 65])
def test_text_that_names_no_certificate_is_refused(text: str) -> None:
    with pytest.raises(NotACertificate):
        parse_certificate_ref(text)


def test_revocations_cover_a_certificate_by_serial_or_by_fingerprint() -> None:
    peer = PeerCertificate("a", "abc", "f" * 64, 0.0)
    revoked = Revoked()
    assert revoked.covers(peer) is None
    by_fingerprint = Revocation("fingerprint", "f" * 64, 1.0, seq=4)
    revoked.add(Revocation("serial", "abd", 1.0, seq=3))
    revoked.add(by_fingerprint)
    assert revoked.covers(peer) == by_fingerprint
    assert revoked.seq == 4
    assert peer.revoked_by(by_fingerprint)
    assert not peer.revoked_by(Revocation("serial", "abd", 1.0))
