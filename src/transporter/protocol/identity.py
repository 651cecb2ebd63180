"""Who an agent is: its identity in its certificate, and revoked certificates. Pure, no I/O.

An agent's client certificate (issued by the control plane's CA, see ``transporter bundle
create``) names the agent in a URI subject alternative name, :func:`agent_uri`::

    spiffe://transporter/agent/<agent id>

(the SPIFFE form, which tools for workload identities read), and again as the subject's common
name, for people. The control plane reads the URI only, and requires exactly one; the agent may
register as that id and no other.

A certificate is named by its serial number (lower-case hex, no leading zeros, as ``transporter
bundle create`` prints it) or by its fingerprint (SHA-256 of its DER bytes, 64 hex digits); a
:class:`Revocation` names one or the other.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final, Literal, Protocol

import attrs

from transporter.protocol.der import Certificate, parse_certificate
from transporter.protocol.ids import is_agent_id

AGENT_URI_PREFIX: Final = "spiffe://transporter/agent/"

# An agent's bundle: the files ``transporter bundle create`` writes into one folder, which the
# agent reads (``--bundle DIR``).
BUNDLE_CA_FILE: Final = "ca.crt"
"""The control plane's CA: the agent trusts it, and only it, for the control plane's name."""
BUNDLE_CERT_FILE: Final = "agent.crt"
BUNDLE_KEY_FILE: Final = "agent.key"
"""The agent's certificate and private key (readable by its owner only)."""
BUNDLE_SIGNING_FILE: Final = "event-signing.pub"
"""The control plane's event-signing public key (Ed25519, PEM)."""

_HEX = re.compile(r"^[0-9a-f]+$")


class IdentityError(ValueError):
    """A certificate that names no agent, or more than one."""


class NotACertificate(ValueError):
    """Text that is neither a serial number nor a fingerprint."""


def agent_uri(agent_id: str) -> str:
    return AGENT_URI_PREFIX + agent_id


def agent_id_of(certificate: Certificate) -> str:
    """The agent a certificate is for, from its URI subject alternative name."""
    if certificate.uris is None:
        raise IdentityError("the certificate has no subject alternative names")
    ids = [
        uri.removeprefix(AGENT_URI_PREFIX)
        for uri in certificate.uris
        if uri.startswith(AGENT_URI_PREFIX)
    ]
    if len(ids) != 1:
        raise IdentityError(
            f"the certificate names {len(ids)} agents ({AGENT_URI_PREFIX}ID URIs), not one"
        )
    if not is_agent_id(ids[0]):
        raise IdentityError(f"the certificate names {ids[0]!r}, which is not an agent id")
    return ids[0]


class Serialled(Protocol):
    """A certificate as this module's reader gives it, or as an X.509 library does."""

    @property
    def serial_number(self) -> int: ...


def serial_of(certificate: Serialled) -> str:
    return format(certificate.serial_number, "x")


def fingerprint_of(der: bytes) -> str:
    """SHA-256 of a certificate's DER bytes, as 64 lower-case hex digits."""
    return hashlib.sha256(der).hexdigest()


RefKind = Literal["serial", "fingerprint"]


def parse_certificate_ref(text: str) -> tuple[RefKind, str]:
    """A serial number (hex, up to 40 digits) or a SHA-256 fingerprint (64 hex digits); either
    may be written with ``:`` between bytes and in any case, the serial with ``0x`` before it."""
    cleaned = text.strip().lower().replace(":", "").removeprefix("0x")
    if not cleaned or not _HEX.fullmatch(cleaned):
        raise NotACertificate(
            f"{text!r} is neither a certificate's serial number (hex) nor its SHA-256 fingerprint"
        )
    if len(cleaned) == 64:
        return "fingerprint", cleaned
    stripped = cleaned.lstrip("0") or "0"
    if len(stripped) > 40:  # RFC 5280: at most 20 octets
        raise NotACertificate(f"{text!r} is too long for a serial number, too short for a SHA-256")
    return "serial", stripped


@attrs.frozen
class Revocation:
    """A certificate the control plane no longer accepts, named by serial or fingerprint."""

    kind: RefKind
    value: str
    """Lower-case hex, as :func:`parse_certificate_ref` gives it."""
    at: float
    by: str = ""
    """Who revoked it (the user and host that ran ``transporter bundle revoke``)."""
    reason: str = ""
    seq: int = 0
    """Assigned by the store: 1, 2, 3 … in the order revocations were stored."""

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.value}"


@attrs.frozen
class PeerCertificate:
    """What the control plane knows about an agent's certificate after the TLS handshake."""

    agent_id: str
    serial: str
    fingerprint: str
    not_after: float

    @classmethod
    def of(cls, der: bytes) -> PeerCertificate:
        """From the certificate's DER bytes; :class:`IdentityError` if it names no agent,
        :class:`~transporter.protocol.der.CertificateError` (a ``ValueError``) if it is not
        one."""
        certificate = parse_certificate(der)
        return cls(
            agent_id=agent_id_of(certificate),
            serial=serial_of(certificate),
            fingerprint=fingerprint_of(der),
            not_after=certificate.not_after,
        )

    def revoked_by(self, revocation: Revocation) -> bool:
        mine = self.serial if revocation.kind == "serial" else self.fingerprint
        return mine == revocation.value

    def describe(self) -> str:
        return f"serial {self.serial}, fingerprint {self.fingerprint}"


class Revoked:
    """The revocations a control plane knows of, for quick look-ups at every handshake."""

    def __init__(self) -> None:
        self._by_key: dict[str, Revocation] = {}
        self.seq = 0
        """The highest ``seq`` seen: the store is asked for what came after it."""

    def add(self, revocation: Revocation) -> None:
        self._by_key.setdefault(revocation.key, revocation)
        self.seq = max(self.seq, revocation.seq)

    def covers(self, certificate: PeerCertificate) -> Revocation | None:
        """The revocation that names ``certificate``, if any."""
        return self._by_key.get(f"serial:{certificate.serial}") or self._by_key.get(
            f"fingerprint:{certificate.fingerprint}"
        )

    def __len__(self) -> int:
        return len(self._by_key)


def describe_tls_error(exc: BaseException) -> str:
    """What TLS said, in a few words (``certificate verify failed: certificate has expired``,
    ``tlsv13 alert certificate required``), rather than the wrappers around it (trio's
    ``BrokenResourceError`` around an ``ssl.SSLError``)."""
    cause: BaseException | None = exc
    while cause is not None and getattr(cause, "reason", None) is None:
        cause = cause.__cause__ or cause.__context__
    if cause is None:
        inner = exc.__cause__ or exc.__context__ or exc
        return f"{type(inner).__name__}: {inner}" if str(inner) else type(inner).__name__
    text = str(getattr(cause, "reason", "")).replace("_", " ").lower()
    verify = getattr(cause, "verify_message", None)
    return f"{text}: {verify}" if verify else text


MIN_PREFIX: Final = 8
"""Hex digits a prefix of a serial or fingerprint must have to name a certificate."""


@attrs.frozen
class IssuedCertificate:
    """An agent certificate the control plane's CA issued (``transporter bundle create``
    records each in the store, so that ``bundle revoke`` revokes only what exists)."""

    serial: str
    fingerprint: str
    agent_id: str
    not_after: float
    issued_at: float
    issued_by: str = ""
    seq: int = 0
    """Assigned by the store: 1, 2, 3 … in the order certificates were recorded."""

    def describe(self) -> str:
        return f"serial {self.serial} (agent {self.agent_id}, fingerprint {self.fingerprint[:16]}…)"


def matching_certificates(
    text: str, issued: list[IssuedCertificate]
) -> tuple[list[IssuedCertificate], bool]:
    """The recorded certificates ``text`` names: its serial or fingerprint whole, else (when it
    has :data:`MIN_PREFIX` digits at least) those it begins. The flag says a prefix matched.
    Raises :class:`NotACertificate` for text that is neither."""
    kind, value = parse_certificate_ref(text)
    exact = [c for c in issued if (c.serial if kind == "serial" else c.fingerprint) == value]
    if exact:
        return exact, False
    cleaned = text.strip().lower().replace(":", "").removeprefix("0x")
    if len(cleaned) < MIN_PREFIX:
        return [], False
    serial_prefix = cleaned.lstrip("0") or "0"
    found = [
        c for c in issued if c.serial.startswith(serial_prefix) or c.fingerprint.startswith(cleaned)
    ]
    return found, bool(found)
