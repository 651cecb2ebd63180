"""Certificates and keys read without a crypto library: PEM, and a small, strict DER reader that
takes from an X.509 certificate the few fields an agent needs. Pure, no I/O.

The agent names itself by its certificate (:mod:`transporter.protocol.identity`) but never
checks one: OpenSSL does that in the TLS handshake. So it needs a certificate's serial number,
its ``notAfter``, its subjectAltName URIs and its DER bytes (for the fingerprint), and nothing
else; a whole X.509 library (and its own copy of OpenSSL) for that would be most of the agent's
memory. This reader is DER only (RFC 5280 certificates are DER): one-byte tags, definite and
minimal lengths, nothing after the last element, and a bound on every input. It does not
recurse: it walks the certificate's fixed shape element by element, so its depth is that of
the shape. Whatever it cannot read is :class:`CertificateError`, never another exception.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import re
from collections.abc import Iterator
from typing import Final

import attrs

MAX_DER_BYTES: Final = 16 * 1024
"""A certificate larger than this is refused (an agent's is under 1 KiB)."""
MAX_PEM_BYTES: Final = 64 * 1024
"""A PEM file larger than this is refused before it is decoded."""

SEQUENCE: Final = 0x30
INTEGER: Final = 0x02
BIT_STRING: Final = 0x03
OCTET_STRING: Final = 0x04
OID: Final = 0x06
BOOLEAN: Final = 0x01
UTC_TIME: Final = 0x17
GENERALIZED_TIME: Final = 0x18
_VERSION: Final = 0xA0  # [0] EXPLICIT
_ISSUER_UID: Final = 0x81  # [1] IMPLICIT
_SUBJECT_UID: Final = 0x82  # [2] IMPLICIT
_EXTENSIONS: Final = 0xA3  # [3] EXPLICIT
_URI: Final = 0x86  # GeneralName uniformResourceIdentifier [6] IMPLICIT IA5String
_SUBJECT_ALT_NAME: Final = bytes.fromhex("551d11")  # 2.5.29.17

_UTC = re.compile(rb"(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z")
_GENERALIZED = re.compile(rb"(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z")


class CertificateError(ValueError):
    """Bytes that are not a certificate (or key) this reader accepts; the message says why."""


@attrs.frozen
class Certificate:
    """What the agent takes from its certificate."""

    der: bytes = attrs.field(repr=False)
    serial_number: int
    not_after: float
    """Seconds since the epoch."""
    uris: tuple[str, ...] | None
    """The subjectAltName's URIs, in order; ``None`` when there is no subjectAltName."""


@attrs.frozen
class _Element:
    tag: int
    start: int
    """Where the content begins."""
    end: int
    """Where it ends (exclusive)."""


class _Reader:
    """The elements of ``data[start:end]``, one after the other."""

    def __init__(self, data: bytes, start: int, end: int, what: str) -> None:
        self.data, self.pos, self.end, self.what = data, start, end, what

    def done(self) -> bool:
        return self.pos >= self.end

    def peek(self) -> int:
        return self.data[self.pos] if self.pos < self.end else -1

    def next(self) -> _Element:
        data, pos, end = self.data, self.pos, self.end
        if end - pos < 2:
            raise CertificateError(f"{self.what}: truncated")
        tag, first = data[pos], data[pos + 1]
        if tag & 0x1F == 0x1F:
            raise CertificateError(f"{self.what}: a multi-byte tag, which no certificate has")
        start = pos + 2
        if first < 0x80:
            length = first
        else:
            count = first & 0x7F
            if count == 0 or count > 3:
                raise CertificateError(f"{self.what}: a length that is not DER, or too large")
            if end - start < count:
                raise CertificateError(f"{self.what}: truncated")
            length = int.from_bytes(data[start : start + count], "big")
            if length < 0x80 or data[start] == 0:
                raise CertificateError(f"{self.what}: a length that is not DER (not minimal)")
            start += count
        if length > end - start:
            raise CertificateError(f"{self.what}: truncated (an element longer than its parent)")
        self.pos = start + length
        return _Element(tag, start, start + length)

    def expect(self, tag: int, what: str) -> _Element:
        element = self.next()
        if element.tag != tag:
            raise CertificateError(
                f"{self.what}: {what}: tag 0x{element.tag:02x}, expected 0x{tag:02x}"
            )
        return element

    def inside(self, element: _Element, what: str) -> _Reader:
        return _Reader(self.data, element.start, element.end, what)

    def finish(self) -> None:
        if self.pos != self.end:
            raise CertificateError(f"{self.what}: {self.end - self.pos} bytes after its end")

    def each(self) -> Iterator[_Element]:
        while not self.done():
            yield self.next()


def _integer(data: bytes, element: _Element) -> int:
    content = data[element.start : element.end]
    if not content:
        raise CertificateError("certificate: an empty serial number")
    if len(content) > 1 and (
        (content[0] == 0 and content[1] < 0x80) or (content[0] == 0xFF and content[1] >= 0x80)
    ):
        raise CertificateError("certificate: a serial number that is not DER (not minimal)")
    return int.from_bytes(content, "big", signed=True)


def _time(data: bytes, element: _Element) -> float:
    text = data[element.start : element.end]
    if element.tag == UTC_TIME and (found := _UTC.fullmatch(text)):
        year = int(found[1])
        year += 1900 if year >= 50 else 2000  # RFC 5280, 4.1.2.5.1
    elif element.tag == GENERALIZED_TIME and (found := _GENERALIZED.fullmatch(text)):
        year = int(found[1])
    else:
        raise CertificateError("certificate: notAfter is not a UTCTime or GeneralizedTime in Z")
    month, day, hour, minute, second = (int(part) for part in found.groups()[1:])
    try:
        moment = datetime.datetime(year, month, day, hour, minute, second, tzinfo=datetime.UTC)
    except ValueError:
        raise CertificateError("certificate: notAfter is not a date") from None
    return moment.timestamp()


def _uris(reader: _Reader, element: _Element) -> tuple[str, ...]:
    outer = reader.inside(element, "subjectAltName")
    names = outer.expect(SEQUENCE, "GeneralNames")
    outer.finish()
    found: list[str] = []
    for name in outer.inside(names, "subjectAltName").each():
        if name.tag == _URI:
            raw = reader.data[name.start : name.end]
            if not raw.isascii():
                raise CertificateError("subjectAltName: a URI that is not IA5 (ASCII)")
            found.append(raw.decode("ascii"))
    return tuple(found)


def _extensions(reader: _Reader, element: _Element) -> tuple[str, ...] | None:
    """The subjectAltName's URIs, ``None`` if the certificate has none."""
    outer = reader.inside(element, "extensions")
    listed = outer.expect(SEQUENCE, "Extensions")
    outer.finish()
    uris: tuple[str, ...] | None = None
    for extension in outer.inside(listed, "extensions").each():
        if extension.tag != SEQUENCE:
            raise CertificateError("extensions: an extension that is not a SEQUENCE")
        fields = reader.inside(extension, "extension")
        oid = fields.expect(OID, "extnID")
        if fields.peek() == BOOLEAN:
            fields.next()
        value = fields.expect(OCTET_STRING, "extnValue")
        fields.finish()
        if reader.data[oid.start : oid.end] == _SUBJECT_ALT_NAME:
            if uris is not None:
                raise CertificateError("extensions: subjectAltName twice")
            uris = _uris(reader, value)
    return uris


def parse_certificate(der: bytes) -> Certificate:
    """The fields of an X.509 certificate in DER; :class:`CertificateError` if it is not one."""
    if len(der) > MAX_DER_BYTES:
        raise CertificateError(f"certificate: {len(der)} bytes, more than {MAX_DER_BYTES}")
    top = _Reader(der, 0, len(der), "certificate")
    whole = top.expect(SEQUENCE, "Certificate")
    top.finish()
    parts = top.inside(whole, "certificate")
    tbs_element = parts.expect(SEQUENCE, "tbsCertificate")
    parts.expect(SEQUENCE, "signatureAlgorithm")
    parts.expect(BIT_STRING, "signatureValue")
    parts.finish()
    tbs = parts.inside(tbs_element, "tbsCertificate")
    if tbs.peek() == _VERSION:
        tbs.next()
    serial = _integer(der, tbs.expect(INTEGER, "serialNumber"))
    tbs.expect(SEQUENCE, "signature")
    tbs.expect(SEQUENCE, "issuer")
    validity = tbs.inside(tbs.expect(SEQUENCE, "validity"), "validity")
    validity.next()  # notBefore
    not_after = _time(der, validity.next())
    validity.finish()
    tbs.expect(SEQUENCE, "subject")
    tbs.expect(SEQUENCE, "subjectPublicKeyInfo")
    uris: tuple[str, ...] | None = None
    optional = [_ISSUER_UID, _SUBJECT_UID, _EXTENSIONS]
    for element in tbs.each():
        if element.tag not in optional:
            raise CertificateError(f"tbsCertificate: an unexpected tag 0x{element.tag:02x}")
        del optional[: optional.index(element.tag) + 1]
        if element.tag == _EXTENSIONS:
            uris = _extensions(tbs, element)
    return Certificate(der=der, serial_number=serial, not_after=not_after, uris=uris)


def pem_blocks(data: bytes, label: str) -> list[bytes]:
    """The DER of each ``-----BEGIN <label>-----`` block in ``data``, in order."""
    if len(data) > MAX_PEM_BYTES:
        raise CertificateError(f"{len(data)} bytes, more than {MAX_PEM_BYTES} for a PEM file")
    if not data.isascii():
        raise CertificateError("not PEM: bytes that are not ASCII")
    begin, end = f"-----BEGIN {label}-----".encode(), f"-----END {label}-----".encode()
    blocks: list[bytes] = []
    position = data.find(begin)
    while position >= 0:
        stop = data.find(end, position)
        if stop < 0:
            raise CertificateError(f"not PEM: -----BEGIN {label}----- without its END line")
        body = b"".join(data[position + len(begin) : stop].split())
        try:
            blocks.append(base64.b64decode(body, validate=True))
        except (binascii.Error, ValueError):
            raise CertificateError(f"not PEM: a {label} block that is not base64") from None
        position = data.find(begin, stop)
    return blocks


def parse_pem_certificate(data: bytes) -> Certificate:
    """The first certificate of a PEM file."""
    blocks = pem_blocks(data, "CERTIFICATE")
    if not blocks:
        raise CertificateError("no PEM certificate (-----BEGIN CERTIFICATE-----) in it")
    return parse_certificate(blocks[0])
