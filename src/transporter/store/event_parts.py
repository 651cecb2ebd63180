"""An event is stored in two parts: the event itself (written once; its manifests may be
megabytes) and its progress (small, rewritten at every report), so that a report never reads or
writes the event again."""

from __future__ import annotations

import json
import logging
from typing import Any

import attrs

from transporter.protocol.model import (
    Event,
    EventRecord,
    EventState,
    Phase,
    ResourceResult,
    ResourceStatus,
    TimelineEntry,
)
from transporter.store.base import EventProgress, StoreError
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


@attrs.frozen
class Brief:
    """The few fields of an event that :class:`EventProgress` has, kept apart from the event
    where the store cannot select them (Redis), so that reading them never reads manifests."""

    target_agent: str
    rollout_id: str
    created_at: float
    expires_at: float

    @classmethod
    def of(cls, event: Event) -> Brief:
        return cls(event.target_agent, event.rollout_id, event.created_at, event.expires_at)

    def text(self) -> str:
        return json.dumps(attrs.asdict(self), separators=(",", ":"))

    @classmethod
    def read(cls, text: str) -> Brief:
        try:
            data = json.loads(text)
            return cls(
                str(data["target_agent"]),
                str(data["rollout_id"]),
                float(data["created_at"]),
                float(data["expires_at"]),
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise StoreError(f"a stored event brief cannot be read: {exc}") from exc


def event_progress(event_id: str, brief: Brief, progress_text: str) -> EventProgress:
    """``event_id``'s :class:`EventProgress` from its brief and its stored progress's JSON (with
    or without its ``seq``): the JSON is parsed, but neither the results' detail (a plan's
    diffs) nor the timeline is made into objects."""
    try:
        data: dict[str, Any] = json.loads(progress_text)
        phase = data.get("phase")
        return EventProgress(
            event_id=event_id,
            target_agent=brief.target_agent,
            rollout_id=brief.rollout_id,
            state=EventState(data["state"]),
            phase=None if phase is None else Phase(phase),
            message=str(data.get("message", "")),
            updated_at=float(data.get("updated_at", 0.0)),
            created_at=brief.created_at,
            expires_at=brief.expires_at,
            resource_statuses=tuple(
                ResourceStatus(result["status"]) for result in data.get("resources", ())
            ),
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise StoreError(
            f"the stored progress of event {event_id!r} cannot be read: {exc}"
        ) from exc
