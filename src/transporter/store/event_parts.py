"""An event is stored in two parts: the event itself (written once; its manifests may be
megabytes) and its progress (small, rewritten at every report), so that a report never reads or
writes the event again."""

from __future__ import annotations

import logging

import attrs

from transporter.protocol.model import (
    Event,
    EventRecord,
    EventState,
    Phase,
    ResourceResult,
    TimelineEntry,
)
from transporter.store.json_rows import load

log = logging.getLogger(__name__)


@attrs.frozen
class Progress:
    """What changes about an event as it goes."""

    state: EventState
    phase: Phase | None = None
    message: str = ""
    resources: tuple[ResourceResult, ...] = ()
    timeline: tuple[TimelineEntry, ...] = ()
    updated_at: float = 0.0

    @classmethod
    def of(cls, record: EventRecord) -> Progress:
        return cls(*progress_fields(record))

    def record(self, event: Event, seq: int) -> EventRecord:
        return EventRecord(
            event,
            seq,
            self.state,
            self.phase,
            self.message,
            self.resources,
            self.timeline,
            self.updated_at,
        )


def progress_fields(
    record: EventRecord,
) -> tuple[
    EventState, Phase | None, str, tuple[ResourceResult, ...], tuple[TimelineEntry, ...], float
]:
    """``record``'s fields that :class:`Progress` has, in its order."""
    return (
        record.state,
        record.phase,
        record.message,
        record.resources,
        record.timeline,
        record.updated_at,
    )


def stored_event(event_id: str, text: str) -> Event:
    """The event stored under ``event_id`` as ``text``, made to carry that id. One whose JSON
    names another id was written by someone else than us; it must not stand for that other
    event (and its signature, which covers the id, no longer matches: its agent refuses it)."""
    event = load(text, Event)
    if event.id != event_id:
        log.warning("store: event row %r holds an event that says it is %r", event_id, event.id)
        event = attrs.evolve(event, id=event_id)
    return event


def manifest_bytes(event: Event) -> int:
    return sum(len(manifest) for manifest in event.payload.manifests)
