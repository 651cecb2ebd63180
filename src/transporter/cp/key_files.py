"""The event-signing key's file, read and made with ``cryptography``: by the control plane's
child process at its start (:mod:`.key_child`) and by the commands that write agents' bundles.
The control plane's own process never imports this module (:mod:`.key_request`)."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from transporter.cp.key_request import PkiError
from transporter.cp.pki import read_private_key, write_private
from transporter.cp.signing_key import SIGNING_KEY_FILE, EventSigner
from transporter.security.ed25519 import PrivateKey


def read_signing_key(
    data_dir: Path, key_file: Path | None = None, *, create: bool
) -> tuple[bytes, bool]:
    """The secret 32 bytes of the key in ``key_file``, else of the one in ``data_dir``, made
    there when there is none and ``create``; and whether it was made now."""
    path = key_file or data_dir / SIGNING_KEY_FILE
    if key_file is None and not path.exists():
        if not create:
            raise PkiError(
                f"no event-signing key in {data_dir} ({SIGNING_KEY_FILE}): start the control"
                " plane with this --data-dir once, or give --signing-key"
            )
        key = Ed25519PrivateKey.generate()
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_private(
            path,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        return key.private_bytes_raw(), True
    loaded = read_private_key(path, "the event-signing key")
    if not isinstance(loaded, Ed25519PrivateKey):
        raise PkiError(f"{path}: the event-signing key must be an Ed25519 key")
    return loaded.private_bytes_raw(), False


def open_signing_key(
    data_dir: Path, key_file: Path | None = None, *, create: bool
) -> tuple[EventSigner, bool]:
    """:func:`read_signing_key`'s key as a signer, and whether it was made now."""
    seed, made = read_signing_key(data_dir, key_file, create=create)
    return EventSigner(PrivateKey(seed)), made
