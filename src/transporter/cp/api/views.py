"""Events as the API answers with them: Secrets' values redacted.

The store keeps each event as submitted (its agent needs the real manifests); every answer that
carries an event goes through :func:`transporter.security.redact.redact_record`. Only events that
may hold a Secret are parsed, in a worker thread, since a few MB of YAML take a while.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import trio

from transporter.protocol import codec
from transporter.protocol.model import EventRecord
from transporter.security.redact import needs_redaction, redact_record

REDACT_THREADS = 2
"""Answers redacted at once (CPU-bound); more wait for a thread."""


class EventViews:
    """Turns stored records into answers. One per app: it owns the threads' limiter."""

    def __init__(self) -> None:
        self._limiter = trio.CapacityLimiter(REDACT_THREADS)

    async def one(self, record: EventRecord, *, manifests: bool = True) -> dict[str, Any]:
        """``manifests=False``: its progress only, the payload's ``manifests`` an empty list (an
        event has at least one, so the empty list cannot be mistaken; nothing to redact)."""
        if not manifests:
            shown: dict[str, Any] = codec.unstructure(record)
            shown["event"]["payload"]["manifests"] = []
            return shown
        shown = (await self.many([record]))[0]
        return shown

    async def many(self, records: Sequence[EventRecord]) -> list[Any]:
        if not any(needs_redaction(record) for record in records):
            shown: list[Any] = codec.unstructure(list(records))
            return shown

        def redact() -> list[Any]:
            return [codec.unstructure(redact_record(record)) for record in records]

        return await trio.to_thread.run_sync(redact, limiter=self._limiter, abandon_on_cancel=True)
