"""The control plane's CA and signing key, and the certificates it issues
(:mod:`transporter.cp.pki`): real keys and certificates made with ``cryptography``, files in
tmp_path."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from transporter.cp.key_files import open_signing_key
from transporter.cp.key_request import PkiError
from transporter.cp.pki import (
    CA_CERT_FILE,
    CA_KEY_FILE,
    new_authority,
    open_authority,
    write_serving,
)
from transporter.cp.signing_key import SIGNING_KEY_FILE
from transporter.protocol.der import parse_certificate
from transporter.protocol.identity import IdentityError, PeerCertificate, agent_id_of


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_first_start_makes_the_ca_and_the_signing_key_and_later_ones_keep_them(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    authority, made = open_authority(data, create=True)
    signer, key_made = open_signing_key(data, create=True)
    assert made and key_made
    assert mode(data / CA_KEY_FILE) == 0o600
    assert mode(data / SIGNING_KEY_FILE) == 0o600
    again, made = open_authority(data, create=True)
    signer_again, key_made = open_signing_key(data, create=True)
    assert not made and not key_made
    assert again.certificate == authority.certificate
    assert signer_again.public_pem() == signer.public_pem()
    constraints = authority.certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.value.ca


def test_a_first_start_cut_short_after_the_key_is_made_again(tmp_path: Path) -> None:
    data = tmp_path / "data"
    open_authority(data, create=True)
    (data / CA_CERT_FILE).unlink()  # as if killed between writing the key and the certificate
    with pytest.raises(PkiError):
        open_authority(data, create=False)  # a command never makes one
    authority, made = open_authority(data, create=True)
    assert made
    again, made = open_authority(data, create=False)
    assert not made and again.certificate == authority.certificate


def test_commands_other_than_the_first_start_never_make_a_ca(tmp_path: Path) -> None:
    with pytest.raises(PkiError, match="start the control plane with this --data-dir once"):
        open_authority(tmp_path, create=False)
    with pytest.raises(PkiError, match="--signing-key"):
        open_signing_key(tmp_path, create=False)
    assert list(tmp_path.iterdir()) == []


def test_a_ca_given_as_files_is_checked(tmp_path: Path) -> None:
    ca = new_authority()
    cert, key = tmp_path / "ca.pem", tmp_path / "ca-key.pem"
    cert.write_bytes(ca.cert_pem())
    key.write_bytes(ca.key_pem())
    authority, made = open_authority(tmp_path / "data", cert, key, create=True)
    assert not made and authority.certificate == ca.certificate
    assert not (tmp_path / "data").exists()  # nothing made in the data folder

    other = tmp_path / "other-key.pem"
    other.write_bytes(new_authority().key_pem())
    with pytest.raises(PkiError, match="is not the key of"):
        open_authority(tmp_path, cert, other, create=True)
    leaf = tmp_path / "leaf.pem"
    leaf.write_bytes(authority.issue_agent("a").cert_pem())
    with pytest.raises(PkiError, match="not a CA certificate"):
        open_authority(tmp_path, leaf, key, create=True)
    with pytest.raises(PkiError, match="both"):
        open_authority(tmp_path, cert, None, create=True)
    with pytest.raises(PkiError, match="cannot read"):
        open_authority(tmp_path, tmp_path / "missing.pem", key, create=True)


def test_an_agent_certificate_names_its_agent_and_serves_clients_only(tmp_path: Path) -> None:
    authority, _ = open_authority(tmp_path, create=True)
    issued = authority.issue_agent("site-7")
    certificate = issued.certificate
    assert (
        agent_id_of(parse_certificate(certificate.public_bytes(serialization.Encoding.DER)))
        == "site-7"
    )
    usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert certificate.issuer == authority.certificate.subject
    peer = PeerCertificate.of(certificate.public_bytes(serialization.Encoding.DER))
    assert (peer.agent_id, peer.serial, peer.fingerprint) == (
        "site-7",
        issued.serial,
        issued.fingerprint,
    )


def test_the_serving_certificate_holds_the_names_agents_dial(tmp_path: Path) -> None:
    authority, _ = open_authority(tmp_path, create=True)
    cert_file, key_file = write_serving(authority, tmp_path, ["cp.example.com", "10.0.0.5"])
    assert mode(key_file) == 0o600
    chain = x509.load_pem_x509_certificates(cert_file.read_bytes())
    assert chain[1] == authority.certificate  # the chain: it, then the CA
    names = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"cp.example.com", "localhost"} <= set(names.get_values_for_type(x509.DNSName))
    assert {ipaddress.ip_address("10.0.0.5"), ipaddress.ip_address("127.0.0.1")} <= set(
        names.get_values_for_type(x509.IPAddress)
    )
    usage = chain[0].extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    with pytest.raises(IdentityError):  # it is nobody's agent certificate
        agent_id_of(parse_certificate(chain[0].public_bytes(serialization.Encoding.DER)))
