"""Agents' credentials: ``transporter bundle create`` and ``transporter bundle revoke``.

``create`` runs on the control plane's host: it issues a client certificate for one agent id from
the control plane's CA and writes the agent's bundle into a new folder, to carry into the site
beside the binary (``transporter agent --bundle DIR``)::

    ca.crt              the control plane's CA (the agent trusts it, and nothing else)
    agent.crt           the agent's certificate: its id, as spiffe://transporter/agent/ID
    agent.key           its private key (mode 0600)
    event-signing.pub   the control plane's event-signing public key

``revoke`` stores a revocation (by serial or fingerprint) in the control plane's store, with its
audit entry; every control plane on that store refuses the certificate from then on, and closes
the connection it has open with it within seconds (see :mod:`transporter.cp.revocations`).
"""

from __future__ import annotations

import datetime
import getpass
import socket
import sys
import time
from pathlib import Path

from transporter.config import BundleCreateConfig, BundleRevokeConfig
from transporter.cp.pki import Authority, Issued, PkiError, open_authority, write_private
from transporter.cp.signer import EventSigner, open_signing_key
from transporter.protocol.identity import (
    BUNDLE_CA_FILE,
    BUNDLE_CERT_FILE,
    BUNDLE_KEY_FILE,
    BUNDLE_SIGNING_FILE,
    NotACertificate,
    Revocation,
    parse_certificate_ref,
)
from transporter.protocol.model import AuditEntry

EXIT_USAGE = 2


def write_bundle(
    authority: Authority,
    signer: EventSigner,
    agent_id: str,
    out: Path,
    *,
    days: float,
    now: datetime.datetime | None = None,
) -> Issued:
    """Issue ``agent_id``'s certificate and write its bundle into ``out`` (new, or empty).
    ``now``: when the certificate's validity starts (tests: certificates of the past)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PkiError(f"{out} exists and is not an empty folder; give a new one")
    issued = authority.issue_agent(agent_id, days=days, now=now)
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    (out / BUNDLE_CA_FILE).write_bytes(authority.issued.cert_pem())
    (out / BUNDLE_CERT_FILE).write_bytes(issued.cert_pem())
    write_private(out / BUNDLE_KEY_FILE, issued.key_pem())
    (out / BUNDLE_SIGNING_FILE).write_bytes(signer.public_pem())
    return issued


def who() -> str:
    """Who runs this command, for the audit log: ``user@host``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def revocation_audit(revocation: Revocation) -> AuditEntry:
    detail = f"{revocation.kind} {revocation.value}"
    if revocation.reason:
        detail += f": {revocation.reason}"
    return AuditEntry(
        at=revocation.at, action="certificate.revoked", actor=revocation.by, detail=detail
    )


def create_main(settings: BundleCreateConfig) -> int:
    """``transporter bundle create``: 0 written, 1 the CA or key cannot be used."""
    prog = "transporter bundle create"
    try:
        authority, _ = open_authority(
            settings.data_dir, settings.ca_cert, settings.ca_key, create=False
        )
        signer, _ = open_signing_key(settings.data_dir, settings.signing_key, create=False)
        issued = write_bundle(
            authority, signer, settings.agent_id, settings.out, days=settings.days
        )
    except (PkiError, OSError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    print(
        f"bundle for agent {settings.agent_id} written to {settings.out}\n"
        f"  serial       {issued.serial}\n"
        f"  fingerprint  {issued.fingerprint}\n"
        f"  valid until  {issued.not_after:%Y-%m-%d %H:%M:%S} UTC\n"
        f"Carry the folder to the agent's host (keep {BUNDLE_KEY_FILE} secret) and run:\n"
        f"  transporter agent --bundle DIR --cp-url wss://HOST:PORT/ws\n"
        f"Revoke it with: transporter bundle revoke {issued.serial}"
    )
    return 0


def revoke_main(settings: BundleRevokeConfig) -> int:
    """``transporter bundle revoke``: 0 revoked (now or before), 1 the store cannot be written,
    2 not a serial or fingerprint, or no SQLite store where it was pointed."""
    import trio  # here: see transporter.cli's docstring

    from transporter.store import StoreError, open_store

    prog = "transporter bundle revoke"
    try:
        kind, value = parse_certificate_ref(settings.certificate)
    except NotACertificate as exc:
        print(f"{prog}: error: {exc} (see --help)", file=sys.stderr)
        return EXIT_USAGE
    spec = settings.store
    if spec.path is not None and not spec.path.is_file():
        print(f"{prog}: error: no store at {spec.path} (see --help)", file=sys.stderr)
        return EXIT_USAGE
    revocation = Revocation(kind, value, time.time(), by=who(), reason=settings.reason)

    async def store_it() -> tuple[Revocation, bool]:
        async with open_store(spec) as store:
            return await store.revoke_certificate(revocation, revocation_audit(revocation))

    try:
        stored, created = trio.run(store_it)
    except StoreError as exc:
        print(f"{prog}: cannot write to the store {spec.display}: {exc}", file=sys.stderr)
        return 1
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(stored.at))
    if created:
        print(
            f"revoked {stored.kind} {stored.value}: control planes on this store refuse it"
            " and close its connection within seconds"
        )
    else:
        print(f"{stored.kind} {stored.value} was revoked already, at {when} UTC by {stored.by}")
    return 0
