"""The control plane's event-signing key: Ed25519, made in the data folder on the first start
(``event-signing.key``, readable by its owner only) unless given as a file. Every event is
signed with it before it is stored (:mod:`transporter.protocol.signing`); its public half goes
into every agent's bundle. Control-plane replicas that share a store must share this key too.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import trio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from transporter.cp.pki import PkiError, write_private
from transporter.protocol import signing
from transporter.protocol.model import Event

SIGNING_KEY_FILE = "event-signing.key"

INLINE_BYTES = 256 * 1024
"""Events with fewer bytes of manifests than this are signed on the event loop; larger ones
(up to 3 MiB, some milliseconds each) in a worker thread, so that requests keep flowing."""
INLINE_EVENTS = 16
"""Events of one batch signed on the event loop at most."""


class EventSigner:
    def __init__(self, key: Ed25519PrivateKey) -> None:
        self.key = key
        self._limiter = trio.CapacityLimiter(1)

    def public_pem(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, event: Event) -> Event:
        return signing.sign(event, self.key)

    async def sign_many(self, events: Sequence[Event]) -> list[Event]:
        """Each event signed; large ones, and batches of many, off the event loop (a batch of
        1,000 would hold every other request up for the time of 1,000 signatures)."""
        size = sum(len(text) for event in events for text in event.payload.manifests)
        if size < INLINE_BYTES and len(events) <= INLINE_EVENTS:
            return [self.sign(event) for event in events]
        return await trio.to_thread.run_sync(
            lambda: [self.sign(event) for event in events], limiter=self._limiter
        )


def open_signing_key(
    data_dir: Path, key_file: Path | None = None, *, create: bool
) -> tuple[EventSigner, bool]:
    """The key in ``key_file``, else the one in ``data_dir``, made there when there is none and
    ``create``. Returns the signer, and whether its key was made now."""
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
        return EventSigner(key), True
    try:
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise PkiError(f"cannot read the event-signing key {path}: {exc.strerror}") from None
    except (ValueError, TypeError) as exc:
        raise PkiError(f"{path} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise PkiError(f"{path}: the event-signing key must be an Ed25519 key")
    return EventSigner(loaded), False
