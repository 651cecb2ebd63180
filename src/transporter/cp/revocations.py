"""Revoked agent certificates, as this control plane knows them.

The store holds the revocations (``transporter bundle revoke`` writes them there), so that every
control plane on it sees them. This one reads them all at start, then asks the store every
``interval`` seconds for newer ones (a cheap call when there are none) and hands each batch to
the agent channel, which closes the connections that use a revoked certificate. A certificate is
refused at its handshake from the moment this control plane knows of its revocation.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio

from transporter.protocol.identity import Revocation, Revoked
from transporter.store.base import Store, StoreUnavailable

log = logging.getLogger(__name__)

POLL_INTERVAL = 2.0
"""Seconds between two looks at the store: a revocation takes effect within about this."""


class RevocationWatch:
    def __init__(self, store: Store, *, interval: float = POLL_INTERVAL) -> None:
        self.store = store
        self.interval = interval
        self.revoked = Revoked()

    async def load(self) -> None:
        """Read every revocation (at start, before the agent channel serves)."""
        for revocation in await self.store.revocations():
            self.revoked.add(revocation)

    async def run(self, on_new: Callable[[list[Revocation]], Awaitable[None]]) -> None:
        """Until cancelled: newer revocations into :attr:`revoked`, then to ``on_new``."""
        while True:
            await trio.sleep(self.interval)
            try:
                new = await self.store.revocations(after=self.revoked.seq)
            except StoreUnavailable as exc:
                log.warning("cannot read revoked certificates from the store: %s", exc)
                continue
            except Exception:  # a record we cannot read must not end the agent channel
                log.exception("cannot read revoked certificates from the store")
                continue
            if not new:
                continue
            for revocation in new:
                self.revoked.add(revocation)
                log.info("certificate %s %s revoked", revocation.kind, revocation.value)
            await on_new(new)
