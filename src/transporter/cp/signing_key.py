"""The control plane's event-signing key: Ed25519, made in the data folder on the first start
(``event-signing.key``, readable by its owner only) unless given as a file. Every event is
signed with it before it is stored (:mod:`transporter.protocol.signing`); its public half goes
into every agent's bundle. Control-plane replicas that share a store must share this key too.

The key file is read (and made) with ``cryptography`` (:mod:`.key_files`), in a child process
when the control plane starts (:mod:`.key_request`); the signing itself goes through the OpenSSL
that TLS loaded (:class:`~transporter.security.ed25519.PrivateKey`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import trio

from transporter.protocol import signing
from transporter.protocol.model import Event
from transporter.security.ed25519 import PrivateKey

SIGNING_KEY_FILE: Final = "event-signing.key"

INLINE_BYTES = 256 * 1024
"""Events with fewer bytes of manifests than this are signed on the event loop; larger ones
(up to 3 MiB, some milliseconds each) in a worker thread, so that requests keep flowing."""
INLINE_EVENTS = 16
"""Events of one batch signed on the event loop at most."""


class EventSigner:
    def __init__(self, key: PrivateKey) -> None:
        self.key = key
        self._limiter = trio.CapacityLimiter(1)

    def public_pem(self) -> bytes:
        return self.key.public_pem()

    @property
    def public_raw(self) -> bytes:
        """The public key's 32 bytes."""
        return self.key.public_raw

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
