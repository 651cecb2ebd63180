"""Events as the API answers with them: Secrets' values redacted.

The store keeps each event as submitted (its agent needs the real manifests); every answer that
carries an event goes through :func:`transporter.security.redact.redact_record`. Only events that
may hold a Secret are parsed, in a worker thread, since a few MB of YAML take a while.

A plan's results carry field changes (``diff``) as its agent reported them. The agent redacts a
Secret's values, but what the API shows must not depend on every agent doing so: a Secret's
changes are shown without their values here too, and every change is scrubbed of the values of
the event's Secrets (:func:`shown_result`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

import attrs
import trio

from transporter.protocol import codec
from transporter.protocol.model import EventRecord, FieldChange, ResourceResult
from transporter.security.redact import needs_redaction, redact_manifests, redact_record
from transporter.security.scrub import REDACTED

REDACT_THREADS = 2
"""Answers redacted at once (CPU-bound); more wait for a thread."""
_SHOWN_OF_A_SECRET: Final = ("metadata.labels", "metadata.name", "metadata.namespace", "type")
"""Paths of a Secret's changes whose values are shown; every other value is :data:`REDACTED`."""


def shown_result(result: ResourceResult, scrub: Callable[[str], str]) -> ResourceResult:
    """``result`` as it may be shown: its message and changes scrubbed, and a Secret's changes
    without their values (only that they were there)."""
    secret = result.kind in ("Secret", "SecretList")
    diff = tuple(_shown_change(change, scrub, secret=secret) for change in result.diff)
    return attrs.evolve(result, message=scrub(result.message), diff=diff)


def _shown_change(change: FieldChange, scrub: Callable[[str], str], *, secret: bool) -> FieldChange:
    if secret and not change.path.startswith(_SHOWN_OF_A_SECRET):
        return attrs.evolve(
            change, old=REDACTED if change.old else "", new=REDACTED if change.new else ""
        )
    return attrs.evolve(change, old=scrub(change.old), new=scrub(change.new))


def _redacted(record: EventRecord) -> EventRecord:
    shown = redact_record(record)
    if not any(result.diff for result in shown.resources):
        return shown
    _, scrub = redact_manifests(record.event.payload.manifests)
    return attrs.evolve(shown, resources=tuple(shown_result(r, scrub) for r in shown.resources))


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
            return [codec.unstructure(_redacted(record)) for record in records]

        return await trio.to_thread.run_sync(redact, limiter=self._limiter, abandon_on_cancel=True)
