"""The agent's credentials: the bundle folder that ``transporter bundle create`` wrote on the
control plane's host and that was carried into the site beside the binary.

From it the agent takes its identity (the id in its certificate), the TLS settings of its
connection (its certificate and key; the control plane's CA as the only one it trusts, never the
system's) and the control plane's public key that every event it runs must be signed with.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import attrs

from transporter.protocol.der import MAX_PEM_BYTES, CertificateError, parse_pem_certificate
from transporter.protocol.identity import (
    BUNDLE_CA_FILE,
    BUNDLE_CERT_FILE,
    BUNDLE_KEY_FILE,
    BUNDLE_SIGNING_FILE,
    IdentityError,
    agent_id_of,
    fingerprint_of,
    serial_of,
)
from transporter.security.ed25519 import Ed25519Unavailable, NotEd25519, PublicKey


class BundleError(Exception):
    """A bundle folder the agent cannot use; the message says which file and why."""


@attrs.frozen
class Bundle:
    folder: Path
    agent_id: str
    """The id in the agent's certificate: the only one the control plane lets it register as."""
    serial: str
    fingerprint: str
    not_after: float
    signing_key: PublicKey = attrs.field(repr=False)

    def ssl_context(self) -> ssl.SSLContext:
        """For ``wss://``: this agent's certificate, and trust in the control plane's CA only."""
        try:
            context = ssl.create_default_context(
                ssl.Purpose.SERVER_AUTH, cafile=str(self.folder / BUNDLE_CA_FILE)
            )
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain(
                str(self.folder / BUNDLE_CERT_FILE), str(self.folder / BUNDLE_KEY_FILE)
            )
        except (OSError, ssl.SSLError) as exc:
            raise BundleError(f"bundle {self.folder}: {exc}") from None
        return context


def load_bundle(folder: Path) -> Bundle:
    """Read and check the bundle in ``folder``; :class:`BundleError` says what is wrong."""

    def read(name: str) -> bytes:
        try:
            with (folder / name).open("rb") as file:
                data = file.read(MAX_PEM_BYTES + 1)
        except OSError as exc:
            raise BundleError(f"bundle {folder}: cannot read {name}: {exc.strerror}") from None
        if len(data) > MAX_PEM_BYTES:
            raise BundleError(f"bundle {folder}: {name}: larger than {MAX_PEM_BYTES} bytes")
        return data

    try:
        certificate = parse_pem_certificate(read(BUNDLE_CERT_FILE))
        agent_id = agent_id_of(certificate)
    except (CertificateError, IdentityError) as exc:
        raise BundleError(f"bundle {folder}: {BUNDLE_CERT_FILE}: {exc}") from None
    _check_ca(folder, read(BUNDLE_CA_FILE))
    try:
        key = PublicKey.from_pem(read(BUNDLE_SIGNING_FILE))
    except NotEd25519 as exc:
        raise BundleError(
            f"bundle {folder}: {BUNDLE_SIGNING_FILE} is not an Ed25519 public key: {exc}"
        ) from None
    except Ed25519Unavailable as exc:
        raise BundleError(f"bundle {folder}: {exc}") from None
    bundle = Bundle(
        folder=folder,
        agent_id=agent_id,
        serial=serial_of(certificate),
        fingerprint=fingerprint_of(certificate.der),
        not_after=certificate.not_after,
        signing_key=key,
    )
    bundle.ssl_context()  # the key matches the certificate, and the files are readable
    return bundle


def _check_ca(folder: Path, pem: bytes) -> None:
    """The CA file holds certificates OpenSSL takes as trust anchors (as ``ssl_context``)."""
    try:
        text = pem.decode("ascii")
        if "-----BEGIN CERTIFICATE-----" not in text:
            raise ValueError("no PEM certificate (-----BEGIN CERTIFICATE-----) in it")
        ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=text)
    except (UnicodeDecodeError, ValueError, ssl.SSLError) as exc:
        reason = "bytes that are not ASCII" if isinstance(exc, UnicodeDecodeError) else exc
        raise BundleError(f"bundle {folder}: {BUNDLE_CA_FILE}: {reason}") from None
