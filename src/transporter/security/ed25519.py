"""Ed25519 signatures checked with the OpenSSL the process already holds for TLS.

The agent checks every event's signature (:mod:`transporter.protocol.signing`) with the control
plane's public key. Python's ``ssl`` module is linked against OpenSSL 3's ``libcrypto.so.3``,
which does Ed25519 (RFC 8032); this module calls it through ctypes, so the agent needs no
other crypto library (``cryptography`` carries its own copy of OpenSSL, most of the agent's
memory). ``ssl`` is imported first, so that ``libcrypto.so.3`` is already loaded: the dynamic
loader then hands back that very object for its soname, in a virtual environment (the
system's) as in the single file (the one it unpacked).

This module loads the library on first use, and says in one line
(:class:`Ed25519Unavailable`) when it cannot. The control plane signs events through it too
(:class:`PrivateKey`), so that its process never loads ``cryptography`` either; the key files
are made and read with ``cryptography`` in a child process at its start
(:mod:`transporter.cp.credentials`). The tests check that the two agree on every signature,
good or bad (Ed25519's signatures are deterministic: the same key signs the same bytes alike).

Why here and not in ``protocol``: loading a shared library is I/O, and ``protocol`` does none.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import functools
import ssl
import weakref
from collections.abc import Iterator
from typing import Any, Final

from transporter.protocol.der import CertificateError, pem_blocks

LIBCRYPTO: Final = "libcrypto.so.3"
"""The soname of OpenSSL 3's library, the one ``_ssl`` is linked against."""
EVP_PKEY_ED25519: Final = 1087
"""OpenSSL's ``NID_ED25519``."""
KEY_BYTES: Final = 32
SIGNATURE_BYTES: Final = 64
SPKI_PREFIX: Final = bytes.fromhex("302a300506032b6570032100")
"""The DER of an Ed25519 SubjectPublicKeyInfo before its 32 key bytes (RFC 8410): SEQUENCE {
SEQUENCE { OID 1.3.101.112 }, BIT STRING (no unused bits) }."""


class Ed25519Unavailable(RuntimeError):
    """The process has no OpenSSL 3 ``libcrypto`` that does Ed25519."""


class NotEd25519(ValueError):
    """A public key that is not an Ed25519 one, or not a public key at all."""


_c = ctypes.c_void_p
_size = ctypes.c_size_t
_SIGNATURES: Final[dict[str, tuple[list[Any], Any]]] = {
    # name: (argtypes, restype), as declared in OpenSSL 3's <openssl/evp.h> and <openssl/err.h>.
    "EVP_PKEY_new_raw_public_key": ([ctypes.c_int, _c, ctypes.c_char_p, _size], _c),
    "EVP_PKEY_new_raw_private_key": ([ctypes.c_int, _c, ctypes.c_char_p, _size], _c),
    "EVP_PKEY_get_raw_public_key": ([_c, ctypes.c_char_p, ctypes.POINTER(_size)], ctypes.c_int),
    "EVP_PKEY_free": ([_c], None),
    "EVP_MD_CTX_new": ([], _c),
    "EVP_MD_CTX_free": ([_c], None),
    "EVP_DigestVerifyInit": ([_c, _c, _c, _c, _c], ctypes.c_int),
    "EVP_DigestVerify": ([_c, ctypes.c_char_p, _size, ctypes.c_char_p, _size], ctypes.c_int),
    "EVP_DigestSignInit": ([_c, _c, _c, _c, _c], ctypes.c_int),
    "EVP_DigestSign": (
        [_c, ctypes.c_char_p, ctypes.POINTER(_size), ctypes.c_char_p, _size],
        ctypes.c_int,
    ),
    "ERR_clear_error": ([], None),
}


def ready() -> None:
    """Nothing when this process can sign and check Ed25519 signatures; else
    :class:`Ed25519Unavailable`, saying why in one line."""
    _libcrypto()


@functools.cache
def _libcrypto() -> ctypes.CDLL:
    """The ``libcrypto.so.3`` that ``ssl`` uses, its functions declared."""
    if not ssl.OPENSSL_VERSION_INFO >= (3,):
        raise Ed25519Unavailable(
            f"signing and checking events needs OpenSSL 3; Python's ssl has {ssl.OPENSSL_VERSION}"
        )
    try:
        library = ctypes.CDLL(LIBCRYPTO)
        for name, (argtypes, restype) in _SIGNATURES.items():
            function = getattr(library, name)
            function.argtypes, function.restype = argtypes, restype
    except (OSError, AttributeError) as exc:
        raise Ed25519Unavailable(
            f"signing and checking events needs OpenSSL 3's {LIBCRYPTO}: {exc}"
        ) from None
    return library


@contextlib.contextmanager
def _digest(library: ctypes.CDLL, init: Any, pkey: int, what: str) -> Iterator[int]:
    """A digest context started with ``init`` (``EVP_DigestSignInit`` or ``…VerifyInit``) for
    ``pkey``, freed on the way out."""
    context = library.EVP_MD_CTX_new()
    if not context:
        raise MemoryError("OpenSSL could not make a digest context")
    try:
        if init(context, None, None, None, pkey) != 1:
            library.ERR_clear_error()
            raise Ed25519Unavailable(f"OpenSSL could not start an Ed25519 {what}")
        yield context
    finally:
        library.EVP_MD_CTX_free(context)


def _free_key(library: ctypes.CDLL, pkey: int) -> None:
    library.EVP_PKEY_free(pkey)


class PublicKey:
    """An Ed25519 public key (32 bytes), held as OpenSSL's ``EVP_PKEY`` until it is dropped."""

    def __init__(self, raw: bytes) -> None:
        if len(raw) != KEY_BYTES:
            raise NotEd25519(f"an Ed25519 public key has {KEY_BYTES} bytes, not {len(raw)}")
        self.raw = bytes(raw)
        library = _libcrypto()
        pkey = library.EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, None, self.raw, KEY_BYTES)
        if not pkey:
            library.ERR_clear_error()
            raise NotEd25519("OpenSSL refused the Ed25519 public key")
        self._pkey: int = pkey
        weakref.finalize(self, _free_key, library, pkey)

    @classmethod
    def from_pem(cls, data: bytes) -> PublicKey:
        """From a PEM SubjectPublicKeyInfo (``-----BEGIN PUBLIC KEY-----``), Ed25519's only."""
        try:
            blocks = pem_blocks(data, "PUBLIC KEY")
        except CertificateError as exc:
            raise NotEd25519(str(exc)) from None
        if not blocks:
            raise NotEd25519("no PEM public key (-----BEGIN PUBLIC KEY-----) in it")
        der = blocks[0]
        if len(der) != len(SPKI_PREFIX) + KEY_BYTES or not der.startswith(SPKI_PREFIX):
            raise NotEd25519("it holds a key of another kind, or more than a key")
        return cls(der[len(SPKI_PREFIX) :])

    def verifies(self, signature: bytes, message: bytes, /) -> bool:
        """Whether ``signature`` is this key's over ``message`` (RFC 8032, pure Ed25519), as
        OpenSSL decides it (a signature whose S is not below the group order is refused)."""
        if len(signature) != SIGNATURE_BYTES:
            return False
        library = _libcrypto()
        with _digest(library, library.EVP_DigestVerifyInit, self._pkey, "verification") as ctx:
            done = library.EVP_DigestVerify(ctx, signature, SIGNATURE_BYTES, message, len(message))
            if done != 1:
                library.ERR_clear_error()  # this thread's queue, which ssl reads
            return bool(done == 1)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and other.raw == self.raw

    def __hash__(self) -> int:
        return hash(self.raw)

    def __repr__(self) -> str:
        return f"PublicKey({self.raw.hex()})"


class PrivateKey:
    """An Ed25519 private key (its 32-byte seed), held as OpenSSL's ``EVP_PKEY`` until it is
    dropped: signs as ``cryptography``'s ``Ed25519PrivateKey`` does (RFC 8032, pure)."""

    def __init__(self, seed: bytes) -> None:
        if len(seed) != KEY_BYTES:
            raise NotEd25519(f"an Ed25519 private key has {KEY_BYTES} bytes, not {len(seed)}")
        library = _libcrypto()
        pkey = library.EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, None, bytes(seed), KEY_BYTES)
        if not pkey:
            library.ERR_clear_error()
            raise NotEd25519("OpenSSL refused the Ed25519 private key")
        self._pkey: int = pkey
        weakref.finalize(self, _free_key, library, pkey)
        raw = ctypes.create_string_buffer(KEY_BYTES)
        size = _size(KEY_BYTES)
        if library.EVP_PKEY_get_raw_public_key(pkey, raw, ctypes.byref(size)) != 1:
            library.ERR_clear_error()
            raise NotEd25519("OpenSSL could not derive the Ed25519 public key")
        self.public_raw = raw.raw[: size.value]
        """Its public half (32 bytes)."""

    def public_pem(self) -> bytes:
        """Its public half as a PEM SubjectPublicKeyInfo, as agents' bundles hold it."""
        body = base64.encodebytes(SPKI_PREFIX + self.public_raw).decode("ascii")
        return f"-----BEGIN PUBLIC KEY-----\n{body}-----END PUBLIC KEY-----\n".encode("ascii")

    def sign(self, data: bytes, /) -> bytes:
        library = _libcrypto()
        with _digest(library, library.EVP_DigestSignInit, self._pkey, "signature") as ctx:
            signature = ctypes.create_string_buffer(SIGNATURE_BYTES)
            size = _size(SIGNATURE_BYTES)
            if library.EVP_DigestSign(ctx, signature, ctypes.byref(size), data, len(data)) != 1:
                library.ERR_clear_error()
                raise Ed25519Unavailable("OpenSSL could not sign with the Ed25519 key")
            return signature.raw[: size.value]

    def __repr__(self) -> str:
        return f"PrivateKey(public {self.public_raw.hex()})"
