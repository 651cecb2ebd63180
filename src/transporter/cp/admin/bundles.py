"""Agents' credentials: ``transporter bundle create`` and ``transporter bundle revoke``.

``create`` runs on the control plane's host: it issues a client certificate for one agent id from
the control plane's CA and writes the agent's bundle into a new folder, to carry into the site
beside the binary (``transporter agent --bundle DIR``); with ``--out -`` the same files as a tar
on stdout (from a pod with no shell: ``kubectl exec ... -- transporter bundle create --out - >
site-1.tar``)::

    ca.crt              the control plane's CA (the agent trusts it, and nothing else)
    agent.crt           the agent's certificate: its id, as spiffe://transporter/agent/ID
    agent.key           its private key (mode 0600)
    event-signing.pub   the control plane's event-signing public key

Every certificate ``create`` issues is recorded in the control plane's store (with its audit
entry) before its bundle is written. ``revoke`` takes the serial or fingerprint of a recorded
certificate, whole or as an unambiguous prefix of at least eight digits, and stores its
revocation, with its audit entry; every control plane on that store refuses the certificate
from then on, and closes the connection it has open with it within seconds (see
:mod:`transporter.cp.revocations`). Anything else (never issued, ambiguous, a typo) is refused.
"""

from __future__ import annotations

import datetime
import getpass
import io
import socket
import sys
import tarfile
import time
from pathlib import Path
from typing import BinaryIO

from transporter.config.admin import BundleCreateConfig, BundleRevokeConfig
from transporter.cp.key_files import open_signing_key
from transporter.cp.key_request import PkiError
from transporter.cp.pki import Authority, Issued, open_authority, write_private
from transporter.cp.signing_key import EventSigner
from transporter.protocol.identity import (
    BUNDLE_CA_FILE,
    BUNDLE_CERT_FILE,
    BUNDLE_KEY_FILE,
    BUNDLE_SIGNING_FILE,
    MIN_PREFIX,
    IssuedCertificate,
    NotACertificate,
    RefKind,
    Revocation,
    matching_certificates,
    parse_certificate_ref,
)
from transporter.protocol.model import AuditEntry

EXIT_USAGE = 2
STDOUT = Path("-")
"""``--out -``: the bundle as a tar on stdout."""


def check_out(out: Path) -> None:
    if out == STDOUT:
        if sys.stdout is None:  # started with its stdout closed (>&-)
            raise PkiError("--out - writes a tar to stdout, which is closed: redirect it to a file")
        if sys.stdout.isatty():
            raise PkiError("--out - writes a tar to stdout: redirect it to a file or a pipe")
        return
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PkiError(f"{out} exists and is not an empty folder; give a new one")


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
    check_out(out)
    issued = authority.issue_agent(agent_id, days=days, now=now)
    write_files(authority, signer, issued, out)
    return issued


def write_files(authority: Authority, signer: EventSigner, issued: Issued, out: Path) -> None:
    if out == STDOUT:
        write_tar(authority, signer, issued, sys.stdout.buffer)
        return
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    (out / BUNDLE_CA_FILE).write_bytes(authority.issued.cert_pem())
    (out / BUNDLE_CERT_FILE).write_bytes(issued.cert_pem())
    write_private(out / BUNDLE_KEY_FILE, issued.key_pem())
    (out / BUNDLE_SIGNING_FILE).write_bytes(signer.public_pem())


def write_tar(authority: Authority, signer: EventSigner, issued: Issued, into: BinaryIO) -> None:
    """The bundle's files as a tar stream (``tar -xf`` gives the folder's files, the key 0600)."""
    files = (
        (BUNDLE_CA_FILE, authority.issued.cert_pem(), 0o644),
        (BUNDLE_CERT_FILE, issued.cert_pem(), 0o644),
        (BUNDLE_KEY_FILE, issued.key_pem(), 0o600),
        (BUNDLE_SIGNING_FILE, signer.public_pem(), 0o644),
    )
    now = int(time.time())
    with tarfile.open(fileobj=into, mode="w|", format=tarfile.USTAR_FORMAT) as tar:
        for name, data, mode in files:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, now
            tar.addfile(info, io.BytesIO(data))
    into.flush()


def record_of(issued: Issued, agent_id: str, by: str) -> IssuedCertificate:
    return IssuedCertificate(
        serial=issued.serial,
        fingerprint=issued.fingerprint,
        agent_id=agent_id,
        not_after=issued.not_after.timestamp(),
        issued_at=time.time(),
        issued_by=by,
    )


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
    """``transporter bundle create``: 0 written, 1 the CA or key cannot be used, or the store
    cannot record the certificate (then nothing is written)."""
    import trio  # here: see transporter.cli's docstring

    from transporter.store import StoreError, open_store

    prog = "transporter bundle create"
    try:
        authority, _ = open_authority(
            settings.data_dir, settings.ca_cert, settings.ca_key, create=False
        )
        signer, _ = open_signing_key(settings.data_dir, settings.signing_key, create=False)
        check_out(settings.out)
        issued = authority.issue_agent(settings.agent_id, days=settings.days)
    except (PkiError, OSError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    record = record_of(issued, settings.agent_id, who())
    audit = AuditEntry(
        at=record.issued_at,
        action="certificate.issued",
        actor=record.issued_by,
        agent_id=settings.agent_id,
        detail=f"serial {record.serial}, fingerprint {record.fingerprint}",
    )

    async def store_it() -> None:
        async with open_store(settings.store) as store:
            await store.record_certificate(record, audit)

    try:
        trio.run(store_it)
        write_files(authority, signer, issued, settings.out)
    except StoreError as exc:
        print(
            f"{prog}: cannot record the certificate in {settings.store.display}: {exc}",
            file=sys.stderr,
        )
        return 1
    except OSError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    _say_written(settings, issued)
    return 0


def _say_written(settings: BundleCreateConfig, issued: Issued) -> None:
    """What was written and what to do with it: on stderr when stdout carries the tar."""
    to_stdout = settings.out == STDOUT
    carry = (
        f"Unpack it on the agent's host (tar -xf FILE -C DIR; keep {BUNDLE_KEY_FILE} secret)"
        if to_stdout
        else f"Carry the folder to the agent's host (keep {BUNDLE_KEY_FILE} secret)"
    )
    print(
        f"bundle for agent {settings.agent_id} written to "
        f"{'stdout, as a tar' if to_stdout else settings.out}\n"
        f"  serial       {issued.serial}\n"
        f"  fingerprint  {issued.fingerprint}\n"
        f"  valid until  {issued.not_after:%Y-%m-%d %H:%M:%S} UTC\n"
        f"{carry} and run:\n"
        f"  transporter agent --bundle DIR --cp-url wss://HOST:PORT/ws\n"
        f"Revoke it with: transporter bundle revoke {issued.serial} {settings.store.flags}",
        file=sys.stderr if to_stdout else sys.stdout,
    )


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

    async def revoke(target: tuple[RefKind, str] | None) -> tuple[Revocation, bool] | str:
        async with open_store(spec) as store:
            if target is None:
                chosen = _choose(settings.certificate, await store.issued_certificates())
                if isinstance(chosen, str):
                    return chosen
                target = chosen
            revocation = Revocation(*target, time.time(), by=who(), reason=settings.reason)
            return await store.revoke_certificate(revocation, revocation_audit(revocation))

    try:
        done = trio.run(revoke, (kind, value) if settings.unrecorded else None)
    except StoreError as exc:
        print(f"{prog}: cannot use the store {spec.display}: {exc}", file=sys.stderr)
        return 1
    if isinstance(done, str):
        print(f"{prog}: error: {done}", file=sys.stderr)
        return 1
    stored, created = done
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(stored.at))
    if created:
        print(
            f"revoked {stored.kind} {stored.value}: control planes on this store refuse it"
            " and close its connection within seconds"
        )
    else:
        print(f"{stored.kind} {stored.value} was revoked already, at {when} UTC by {stored.by}")
    return 0


def _choose(text: str, issued: list[IssuedCertificate]) -> tuple[RefKind, str] | str:
    """The one recorded certificate ``text`` names, as what to revoke; else why not (one line)."""
    found, by_prefix = matching_certificates(text, issued)
    if len(found) == 1:
        certificate = found[0]
        if by_prefix:
            print(f"{text.strip()} is the start of {certificate.describe()}")
            return "serial", certificate.serial
        return parse_certificate_ref(text)
    if found:
        named = "; ".join(c.describe() for c in found[:5])
        return f"{text.strip()} begins {len(found)} certificates ({named}): give more of it"
    return (
        f"no certificate issued here has the serial or fingerprint {text.strip()} (a prefix"
        f" needs {MIN_PREFIX} digits at least). A certificate issued before certificates were"
        " recorded: give its whole serial or fingerprint with --unrecorded"
    )
