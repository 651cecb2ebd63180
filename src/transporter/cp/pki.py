"""The control plane's certificate authority, as k3s keeps its own: created in the data folder on
the first start (or given as files), it issues the agent channel's serving certificate at every
start, and each agent's client certificate (``transporter bundle create``).

Files in the data folder (keys readable by their owner only)::

    ca.crt, ca.key                        the CA: ECDSA P-256, valid 10 years
    agent-channel.crt, agent-channel.key  the agent channel's serving certificate, issued again
                                          at every start (1 year), for the names agents dial

Agents' certificates name the agent in a URI (:mod:`transporter.protocol.identity`) and may
only authenticate clients; the serving certificate may only authenticate servers. So neither can
stand for the other: an agent cannot pose as the control plane to another agent, nor the
control plane's certificate as an agent.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
from collections.abc import Iterable
from pathlib import Path

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from transporter.cp.key_request import PkiError, make_folder
from transporter.protocol.identity import agent_uri, fingerprint_of, serial_of

CA_CERT_FILE = "ca.crt"
CA_KEY_FILE = "ca.key"
SERVING_CERT_FILE = "agent-channel.crt"
SERVING_KEY_FILE = "agent-channel.key"

CA_DAYS = 3650
SERVING_DAYS = 365
AGENT_DAYS = 365
"""Default lifetime of an agent's certificate; ``transporter bundle create --days`` changes it."""
BACKDATE = datetime.timedelta(minutes=5)
"""Certificates start a little in the past, for clocks a little behind."""
DEFAULT_NAMES = ("localhost", "127.0.0.1", "::1")
"""Names the serving certificate always holds, beside ``--tls-san`` and the host's name."""


Key = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
"""Keys a CA given as files may have; the ones made here are ECDSA P-256."""


@attrs.frozen
class Issued:
    """A certificate and its private key."""

    certificate: x509.Certificate
    key: Key = attrs.field(repr=False)

    @property
    def serial(self) -> str:
        return serial_of(self.certificate)

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(self.certificate.public_bytes(serialization.Encoding.DER))

    @property
    def not_after(self) -> datetime.datetime:
        return self.certificate.not_valid_after_utc

    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


@attrs.frozen
class Authority:
    """The CA: issues the serving certificate and agents' certificates."""

    issued: Issued
    cert_file: Path
    """Where its certificate is (it goes into every bundle, and into the serving chain)."""

    @property
    def certificate(self) -> x509.Certificate:
        return self.issued.certificate

    def issue_agent(
        self,
        agent_id: str,
        *,
        days: float = AGENT_DAYS,
        now: datetime.datetime | None = None,
    ) -> Issued:
        """A client certificate for ``agent_id`` (``now`` for tests: certificates of the past)."""
        key = ec.generate_private_key(ec.SECP256R1())
        builder = self._builder(_name(agent_id), key, days=days, now=now)
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(agent_uri(agent_id))]),
            critical=False,
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        return Issued(builder.sign(self.issued.key, hashes.SHA256()), key)

    def issue_serving(self, names: Iterable[str], *, days: float = SERVING_DAYS) -> Issued:
        """The agent channel's certificate, for ``names`` (DNS names or IP addresses)."""
        key = ec.generate_private_key(ec.SECP256R1())
        alternatives: list[x509.GeneralName] = []
        for name in dict.fromkeys(names):  # in order, once each
            try:
                alternatives.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alternatives.append(x509.DNSName(name))
        builder = self._builder(_name("transporter agent channel"), key, days=days)
        builder = builder.add_extension(
            x509.SubjectAlternativeName(alternatives), critical=False
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        return Issued(builder.sign(self.issued.key, hashes.SHA256()), key)

    def _builder(
        self,
        subject: x509.Name,
        key: ec.EllipticCurvePrivateKey,
        *,
        days: float,
        now: datetime.datetime | None = None,
    ) -> x509.CertificateBuilder:
        start = (now or datetime.datetime.now(datetime.UTC)) - BACKDATE
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + BACKDATE + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(ca=False), critical=True)
            # Python 3.13 verifies strictly (VERIFY_X509_STRICT): key identifiers are required.
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.issued.key.public_key()),
                critical=False,
            )
        )


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """Signatures only (ECDSA keys sign the TLS handshake); a CA's also sign certificates."""
    return x509.KeyUsage(
        digital_signature=True,
        key_cert_sign=ca,
        crl_sign=ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        encipher_only=False,
        decipher_only=False,
    )


def new_authority(common_name: str = "transporter CA") -> Issued:
    """A new self-signed CA (in memory)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return Issued(certificate, key)


def open_authority(
    data_dir: Path,
    cert_file: Path | None = None,
    key_file: Path | None = None,
    *,
    create: bool,
) -> tuple[Authority, bool]:
    """The CA given as files, else the one in ``data_dir``; made there when there is none and
    ``create`` (the control plane's first start). Returns it, and whether it was made now."""
    if (cert_file is None) != (key_file is None):
        raise PkiError("give both the CA's certificate and its key, or neither")
    if cert_file is not None and key_file is not None:
        return Authority(_load_ca(cert_file, key_file), cert_file), False
    cert_file, key_file = data_dir / CA_CERT_FILE, data_dir / CA_KEY_FILE
    # The key is written first, the certificate second: a key alone is a first start that was
    # cut short (nothing can have been issued without the certificate), so it is made again.
    interrupted = create and key_file.exists() and not cert_file.exists()
    if (cert_file.exists() or key_file.exists()) and not interrupted:
        return Authority(_load_ca(cert_file, key_file), cert_file), False
    if not create:
        raise PkiError(
            f"no CA in {data_dir} ({CA_CERT_FILE}, {CA_KEY_FILE}): start the control plane"
            " with this --data-dir once, or give --ca-cert and --ca-key"
        )
    issued = new_authority()
    make_folder(data_dir)
    write_private(key_file, issued.key_pem(), replace=interrupted)
    write_public(cert_file, issued.cert_pem())
    return Authority(issued, cert_file), True


def write_serving(authority: Authority, data_dir: Path, names: Iterable[str]) -> tuple[Path, Path]:
    """Issue the serving certificate for ``names`` (and the defaults) into ``data_dir``: the
    certificate file holds the chain (it, then the CA's certificate). Returns both paths."""
    every = [*names, *DEFAULT_NAMES, socket.gethostname()]
    issued = authority.issue_serving(name for name in every if name)
    make_folder(data_dir)
    cert_file, key_file = data_dir / SERVING_CERT_FILE, data_dir / SERVING_KEY_FILE
    write_private(key_file, issued.key_pem(), replace=True)
    write_public(cert_file, issued.cert_pem() + authority.issued.cert_pem())
    return cert_file, key_file


def write_private(path: Path, data: bytes, *, replace: bool = False) -> None:
    """A key file, readable by its owner only from the moment it exists; written whole under a
    temporary name first, so that a reader never sees half of it."""
    if not replace and path.exists():
        raise PkiError(f"{path} exists; not replaced")
    _write_whole(path, data, 0o600)


def write_public(path: Path, data: bytes) -> None:
    _write_whole(path, data, 0o644)


def _write_whole(path: Path, data: bytes, mode: int) -> None:
    """``data`` into ``path`` under a temporary name first, synced, then renamed and the folder
    synced: a reader (or a start after a power cut) sees all of it or none. The temporary file
    is created afresh (never through a link, nor one left over with other permissions)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "wb") as out:
        os.fchmod(out.fileno(), mode)  # whatever the umask
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    temporary.replace(path)
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def _load_ca(cert_file: Path, key_file: Path) -> Issued:
    try:
        certificate = x509.load_pem_x509_certificate(cert_file.read_bytes())
    except OSError as exc:
        raise PkiError(f"cannot read the CA certificate {cert_file}: {exc.strerror}") from None
    except ValueError as exc:
        raise PkiError(f"{cert_file} is not a PEM certificate: {exc}") from None
    key = read_private_key(key_file, "the CA key")
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise PkiError(f"{key_file}: the CA key must be an ECDSA or RSA key")
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise PkiError(f"{cert_file} is not a CA certificate (basicConstraints CA:TRUE)")
    if key.public_key() != certificate.public_key():
        raise PkiError(f"{key_file} is not the key of {cert_file}")
    return Issued(certificate, key)


def read_private_key(path: Path, what: str) -> object:
    """The unencrypted PEM private key in ``path``; :class:`PkiError` naming it as ``what``."""
    try:
        return serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise PkiError(f"cannot read {what} {path}: {exc.strerror}") from None
    except (ValueError, TypeError) as exc:
        raise PkiError(f"{path} is not an unencrypted PEM private key: {exc}") from None


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
