"""Ed25519 through OpenSSL and ctypes (:mod:`transporter.security.ed25519`) does as
``cryptography`` does: the agent's verification decides alike, signature for signature, good or
bad; the control plane's signatures are the same bytes."""

from __future__ import annotations

import ctypes
import random
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from transporter.security.ed25519 import LIBCRYPTO, NotEd25519, PrivateKey, PublicKey

# RFC 8032, 7.1: TEST 1, 2 and 3 (secret key, public key, message, signature).
RFC8032 = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
        "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
        "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
]
L = 2**252 + 27742317777372353535851937790883648493
"""The order of Ed25519's group: a signature's S must be below it (RFC 8032, 5.1.7)."""


def theirs(public: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        public.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def ours(public: Ed25519PublicKey) -> PublicKey:
    return PublicKey(public.public_bytes_raw())


@pytest.mark.parametrize(("secret", "public", "message", "signature"), RFC8032)
def test_rfc8032_vectors(secret: str, public: str, message: str, signature: str) -> None:
    key = PublicKey(bytes.fromhex(public))
    raw_signature, raw_message = bytes.fromhex(signature), bytes.fromhex(message)
    assert key.verifies(raw_signature, raw_message)
    assert not key.verifies(raw_signature, raw_message + b"\0")
    private = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(secret))
    assert private.sign(raw_message) == raw_signature  # the vector is the library's, too


def flipped(data: bytes, bit: int) -> bytes:
    changed = bytearray(data)
    changed[bit // 8] ^= 1 << (bit % 8)
    return bytes(changed)


def test_it_agrees_with_cryptography_on_good_and_bad_signatures() -> None:
    draw = random.Random(8032)
    for _ in range(60):
        private = Ed25519PrivateKey.generate()
        public = private.public_key()
        message = draw.randbytes(draw.randrange(0, 2000))
        signature = private.sign(message)
        cases = [
            (signature, message),
            (flipped(signature, draw.randrange(512)), message),
            (signature, flipped(message, draw.randrange(len(message) * 8)) if message else b"x"),
            (private.sign(message + b"."), message),
        ]
        for candidate, text in cases:
            assert ours(public).verifies(candidate, text) == theirs(public, candidate, text)
        assert ours(public).verifies(signature, message)


def test_a_malleable_signature_is_refused_as_openssl_refuses_it() -> None:
    """S + L verifies the same equation; RFC 8032 (and OpenSSL) refuse an S not below L."""
    private = Ed25519PrivateKey.generate()
    public = private.public_key()
    signature = private.sign(b"event")
    s = int.from_bytes(signature[32:], "little")
    malleable = signature[:32] + (s + L).to_bytes(32, "little")
    assert not theirs(public, malleable, b"event")
    assert not ours(public).verifies(malleable, b"event")


@pytest.mark.parametrize("length", [0, 1, 63, 65, 128])
def test_a_signature_of_the_wrong_length_is_refused(length: int) -> None:
    private = Ed25519PrivateKey.generate()
    signature = (private.sign(b"event") * 3)[:length]
    assert not ours(private.public_key()).verifies(signature, b"event")


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_a_key_of_the_wrong_length_is_refused(length: int) -> None:
    with pytest.raises(NotEd25519, match=f"32 bytes, not {length}"):
        PublicKey(b"k" * length)


def pem(public: object) -> bytes:
    encode = public.public_bytes  # type: ignore[attr-defined]
    data: bytes = encode(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return data


def test_the_key_from_its_pem_and_nothing_else() -> None:
    public = Ed25519PrivateKey.generate().public_key()
    assert PublicKey.from_pem(pem(public)).raw == public.public_bytes_raw()
    assert PublicKey.from_pem(pem(public)) == ours(public)
    others = [
        pem(ec.generate_private_key(ec.SECP256R1()).public_key()),
        pem(rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()),
    ]
    for other in others:
        with pytest.raises(NotEd25519, match="a key of another kind"):
            PublicKey.from_pem(other)
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(NotEd25519, match="not PEM"):
        PublicKey.from_pem(der)
    with pytest.raises(NotEd25519, match="no PEM public key"):
        PublicKey.from_pem(pem(public).replace(b"PUBLIC KEY", b"PRIVATE KEY"))
    longer = pem(public).replace(b"\n-----END", b"AAAA\n-----END")
    with pytest.raises(NotEd25519):
        PublicKey.from_pem(longer)
    with pytest.raises(NotEd25519, match="not base64"):
        PublicKey.from_pem(b"-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n")
    with pytest.raises(NotEd25519, match="more than"):
        PublicKey.from_pem(pem(public) * 1000)


def test_a_refused_signature_leaves_no_error_for_ssl_to_find() -> None:
    """OpenSSL queues an error per thread when a verification fails; left there, the next TLS
    call on that thread could take it for its own."""
    private = Ed25519PrivateKey.generate()
    key = ours(private.public_key())
    assert not key.verifies(flipped(private.sign(b"e"), 3), b"e")
    peek = ctypes.CDLL(LIBCRYPTO).ERR_peek_error
    peek.argtypes, peek.restype = [], ctypes.c_ulong
    assert peek() == 0


MAPS = """
import sys
from transporter.security.ed25519 import PublicKey
PublicKey(bytes(32))
print("\\n".join(sorted({line.split()[-1] for line in open("/proc/self/maps")
                         if "libcrypto" in line})))
"""


def test_the_libcrypto_it_calls_is_the_one_ssl_loaded() -> None:
    """Loaded by its soname, it is the object ``_ssl`` is linked against: one libcrypto in
    the process, not a second copy."""
    done = subprocess.run(
        [sys.executable, "-c", MAPS], capture_output=True, text=True, timeout=60, check=True
    )
    mapped = done.stdout.split()
    assert len(mapped) == 1, mapped
    assert Path(mapped[0]).name == LIBCRYPTO
    assert ssl.OPENSSL_VERSION_INFO >= (3,)


# --- signing (the control plane's) ----------------------------------------------------------


@pytest.mark.parametrize(("secret", "public", "message", "signature"), RFC8032)
def test_our_signatures_are_the_rfc8032_ones(
    secret: str, public: str, message: str, signature: str
) -> None:
    key = PrivateKey(bytes.fromhex(secret))
    assert key.public_raw == bytes.fromhex(public)
    assert key.sign(bytes.fromhex(message)) == bytes.fromhex(signature)


def test_we_sign_as_cryptography_does() -> None:
    """Ed25519 signs deterministically: the same key signs the same bytes alike, so each
    signature must be cryptography's byte for byte, and its public key's PEM too."""
    rng = random.Random(15)
    for _ in range(50):
        theirs_key = Ed25519PrivateKey.generate()
        mine = PrivateKey(theirs_key.private_bytes_raw())
        message = rng.randbytes(rng.choice([0, 1, 64, 1000, 70_000]))
        assert mine.sign(message) == theirs_key.sign(message)
        assert mine.public_pem() == theirs_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        assert PublicKey.from_pem(mine.public_pem()).verifies(mine.sign(message), message)


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_a_private_key_of_the_wrong_length_is_refused(length: int) -> None:
    with pytest.raises(NotEd25519, match=f"32 bytes, not {length}"):
        PrivateKey(bytes(length))
