"""An agent's bundle (:mod:`transporter.agent.bundle`): what ``bundle create`` writes
(:mod:`transporter.cp.admin.bundles`) holds what the agent needs, and a broken one is refused
naming the file."""

from __future__ import annotations

import base64
import re
import shutil
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from transporter.agent.bundle import BundleError, load_bundle
from transporter.cp.admin.bundles import write_bundle
from transporter.cp.key_files import open_signing_key
from transporter.cp.key_request import PkiError
from transporter.cp.pki import open_authority
from transporter.protocol.identity import (
    BUNDLE_CA_FILE,
    BUNDLE_CERT_FILE,
    BUNDLE_KEY_FILE,
    BUNDLE_SIGNING_FILE,
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_bundle_holds_what_the_agent_needs(tmp_path: Path) -> None:
    authority, _ = open_authority(tmp_path / "cp", create=True)
    signer, _ = open_signing_key(tmp_path / "cp", create=True)
    issued = write_bundle(authority, signer, "site-3", tmp_path / "bundle", days=10)
    assert mode(tmp_path / "bundle" / BUNDLE_KEY_FILE) == 0o600
    bundle = load_bundle(tmp_path / "bundle")
    assert (bundle.agent_id, bundle.serial, bundle.fingerprint) == (
        "site-3",
        issued.serial,
        issued.fingerprint,
    )
    assert bundle.signing_key.raw == signer.public_raw
    bundle.ssl_context()
    with pytest.raises(PkiError, match="not an empty folder"):
        write_bundle(authority, signer, "site-3", tmp_path / "bundle", days=10)


def test_a_broken_bundle_is_refused_with_the_file_named(tmp_path: Path) -> None:
    authority, _ = open_authority(tmp_path / "cp", create=True)
    signer, _ = open_signing_key(tmp_path / "cp", create=True)
    one, two = tmp_path / "one", tmp_path / "two"
    for folder in (one, two):
        write_bundle(authority, signer, "site-3", folder, days=10)
    (one / BUNDLE_SIGNING_FILE).write_bytes(
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(BundleError, match=r"event-signing\.pub is not an Ed25519 public key"):
        load_bundle(one)
    (two / BUNDLE_KEY_FILE).unlink()
    with pytest.raises(BundleError, match=r"No such file"):
        load_bundle(two)
    with pytest.raises(BundleError, match=r"cannot read agent\.crt"):
        load_bundle(tmp_path / "nowhere")


def test_whatever_the_files_hold_the_agent_says_which_and_why(tmp_path: Path) -> None:
    """Truncated, oversized, mistagged, nested or foreign bytes in any of the bundle's files:
    a :class:`BundleError` naming the file, never another exception."""
    authority, _ = open_authority(tmp_path / "cp", create=True)
    signer, _ = open_signing_key(tmp_path / "cp", create=True)
    good = tmp_path / "good"
    write_bundle(authority, signer, "site-3", good, days=10)
    cert = (good / BUNDLE_CERT_FILE).read_bytes()
    der = base64.b64decode(b"".join(cert.splitlines()[1:-1]))
    nested = b"\x05\x00"
    while len(nested) < 120:
        nested = b"\x30" + bytes([len(nested)]) + nested

    def as_pem(data: bytes) -> bytes:
        body = base64.encodebytes(data)
        return b"-----BEGIN CERTIFICATE-----\n" + body + b"-----END CERTIFICATE-----\n"

    broken = {
        BUNDLE_CERT_FILE: [
            as_pem(der[: len(der) // 2]),
            as_pem(der + b"\0"),
            as_pem(nested),
            as_pem(b"\x31" + der[1:]),
            cert * 200,
            b"\xff" * 100,
            b"",
        ],
        BUNDLE_CA_FILE: [b"", b"\xff\xfe", as_pem(der[:100]), cert[:200], b"hello"],
        BUNDLE_SIGNING_FILE: [b"", b"\x00" * 70_000, cert, b"-----BEGIN PUBLIC KEY-----\n"],
    }
    for name, contents in broken.items():
        for n, content in enumerate(contents):
            folder = tmp_path / f"{name}-{n}"
            shutil.copytree(good, folder)
            (folder / name).write_bytes(content)
            with pytest.raises(BundleError, match=re.escape(f"{folder}: {name}")):
                load_bundle(folder)
