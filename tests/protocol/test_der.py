"""The agent's certificate reader (:mod:`transporter.protocol.der`): the fields it takes are
those ``cryptography`` reads from the same bytes, and whatever else it is given (truncated,
oversized, nested, mistagged, trailing bytes) is a :class:`CertificateError`, never another
exception."""

from __future__ import annotations

import contextlib
import datetime
import random

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from transporter.protocol.der import (
    MAX_DER_BYTES,
    CertificateError,
    parse_certificate,
    parse_pem_certificate,
    pem_blocks,
)

KEY = ec.generate_private_key(ec.SECP256R1())
DER = serialization.Encoding.DER


def certificate(
    *,
    serial: int = 0x1F2E3D4C5B6A,
    not_after: datetime.datetime = datetime.datetime(2031, 5, 6, 7, 8, 9, tzinfo=datetime.UTC),
    names: list[x509.GeneralName] | None = None,
    extra: bool = False,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "site-1")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(KEY.public_key())
        .serial_number(serial)
        .not_valid_before(not_after - datetime.timedelta(days=30))
        .not_valid_after(not_after)
    )
    if extra:
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
    if names is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if extra:
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), True
        )
    return builder.sign(KEY, hashes.SHA256())


URI = x509.UniformResourceIdentifier
CASES = {
    "one uri": {"names": [URI("spiffe://transporter/agent/site-1")]},
    "uris among other names": {
        "names": [
            x509.DNSName("site.example"),
            URI("spiffe://transporter/agent/a"),
            x509.RFC822Name("ops@example.com"),
            URI("https://example.com/x"),
        ],
        "extra": True,
    },
    "no san": {},
    "empty-ish san": {"names": [x509.DNSName("only.example")]},
    "generalized time": {
        "names": [URI("spiffe://transporter/agent/late")],
        "not_after": datetime.datetime(2051, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
    },
    "utc time of the last century": {
        "not_after": datetime.datetime(1999, 12, 31, 23, 59, 59, tzinfo=datetime.UTC),
    },
    "serial of one byte": {"serial": 1},
    "serial with its top bit set": {"serial": 0x80},
    "serial of 20 octets": {"serial": 2**159 - 1},
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_the_fields_are_those_cryptography_reads(case: dict[str, object]) -> None:
    made = certificate(**case)  # type: ignore[arg-type]
    read = parse_certificate(made.public_bytes(DER))
    assert read.serial_number == made.serial_number
    assert read.not_after == made.not_valid_after_utc.timestamp()
    assert read.der == made.public_bytes(DER)
    try:
        san = made.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        assert read.uris is None
    else:
        assert read.uris == tuple(san.get_values_for_type(URI))
    pem = made.public_bytes(serialization.Encoding.PEM)
    assert parse_pem_certificate(b"comment\n" + pem + pem) == read


def never_anything_else(data: bytes) -> None:
    with contextlib.suppress(CertificateError):
        parse_certificate(data)


GOOD = certificate(names=[URI("spiffe://transporter/agent/site-1")], extra=True).public_bytes(DER)


def test_every_truncation_is_refused() -> None:
    for end in range(len(GOOD)):
        with pytest.raises(CertificateError):
            parse_certificate(GOOD[:end])


def test_trailing_bytes_are_refused() -> None:
    with pytest.raises(CertificateError, match="bytes after its end"):
        parse_certificate(GOOD + b"\0")


def test_random_damage_never_raises_anything_else() -> None:
    draw = random.Random(5280)
    for _ in range(3000):
        damaged = bytearray(GOOD)
        for _ in range(draw.randrange(1, 4)):
            damaged[draw.randrange(len(damaged))] = draw.randrange(256)
        never_anything_else(bytes(damaged))
    for _ in range(300):
        never_anything_else(draw.randbytes(draw.randrange(0, 200)))


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        pytest.param(b"", "truncated", id="empty"),
        pytest.param(b"\x30", "truncated", id="tag only"),
        pytest.param(b"\x30\x80\x00\x00", "not DER", id="indefinite length"),
        pytest.param(b"\x30\x81\x05" + bytes(5), "not minimal", id="long form for a short length"),
        pytest.param(b"\x30\x82\x00\x90" + bytes(0x90), "not minimal", id="leading zero length"),
        pytest.param(b"\x30\x84\x00\x00\x00\x05", "too large", id="four length bytes"),
        pytest.param(b"\x3f\x01\x00", "multi-byte tag", id="multi-byte tag"),
        pytest.param(b"\x31\x00", "expected 0x30", id="a SET, not a SEQUENCE"),
        pytest.param(b"\x30\x05\x02\x01", "truncated", id="child longer than parent"),
        pytest.param(b"\x30\x00", "truncated", id="empty sequence"),
        pytest.param(b"\x30\x82\xff\xff", "truncated", id="length past the end"),
    ],
)
def test_malformed_der_is_refused_saying_why(data: bytes, problem: str) -> None:
    with pytest.raises(CertificateError, match=problem):
        parse_certificate(data)


def test_deep_nesting_is_refused_without_recursion() -> None:
    nested = b"\x05\x00"
    for _ in range(2000):
        nested = b"\x30" + bytes([0x82]) + len(nested).to_bytes(2, "big") + nested
        if len(nested) > 60000:
            break
    with pytest.raises(CertificateError):
        parse_certificate(nested[: MAX_DER_BYTES - 4])
    small = b"\x05\x00"
    for _ in range(60):
        small = b"\x30" + bytes([len(small)]) + small if len(small) < 128 else small
    with pytest.raises(CertificateError):
        parse_certificate(small)


def test_an_oversized_certificate_is_refused_before_it_is_read() -> None:
    with pytest.raises(CertificateError, match=f"more than {MAX_DER_BYTES}"):
        parse_certificate(b"\x30\x83" + (MAX_DER_BYTES).to_bytes(3, "big") + bytes(MAX_DER_BYTES))


def replaced(old: bytes, new: bytes) -> bytes:
    assert GOOD.count(old) == 1
    return GOOD.replace(old, new)


def test_wrong_tags_and_values_inside_are_refused() -> None:
    uri = b"spiffe://transporter/agent/site-1"
    with pytest.raises(CertificateError, match="not IA5"):
        parse_certificate(replaced(uri, uri[:-1] + b"\xe9"))
    after = certificate().not_valid_after_utc.strftime("%y%m%d%H%M%SZ").encode()
    plain = certificate().public_bytes(DER)
    for bad in (after[:-1] + b"+", b"3113" + after[4:], b"31a5" + after[4:]):
        with pytest.raises(CertificateError, match="notAfter"):
            parse_certificate(plain.replace(after, bad))
    with pytest.raises(CertificateError, match="subjectAltName twice"):
        parse_certificate(twice_san())


def twice_san() -> bytes:
    """A certificate whose tbsCertificate lists the subjectAltName extension twice (cryptography
    will not build one; the bytes are patched: the key usage's OID becomes the SAN's)."""
    made = certificate(names=[URI("spiffe://transporter/agent/x")], extra=True).public_bytes(DER)
    key_usage = bytes.fromhex("0603551d0f")
    return made.replace(key_usage, bytes.fromhex("0603551d11"))


def test_pem_bounds() -> None:
    made = certificate()
    pem = made.public_bytes(serialization.Encoding.PEM)
    assert pem_blocks(pem, "CERTIFICATE") == [made.public_bytes(DER)]
    with pytest.raises(CertificateError, match="without its END"):
        pem_blocks(pem.split(b"-----END")[0], "CERTIFICATE")
    with pytest.raises(CertificateError, match="no PEM certificate"):
        parse_pem_certificate(b"hello")
    with pytest.raises(CertificateError, match="more than"):
        parse_pem_certificate(pem * 200)
    with pytest.raises(CertificateError, match="not ASCII"):
        parse_pem_certificate(pem.replace(b"-----END", "é-----END".encode()))
