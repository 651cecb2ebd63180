"""How an event's record changes: the one rule both stores apply, so they cannot disagree."""

from __future__ import annotations

import attrs

from transporter.protocol.model import (
    EventRecord,
    EventState,
    Phase,
    ResourceResult,
    TimelineEntry,
)

_RANK = {
    EventState.QUEUED: 0,
    EventState.ASSIGNED: 1,
    EventState.IN_PROGRESS: 2,
    EventState.COMPLETED: 3,
    EventState.FAILED: 3,
    EventState.EXPIRED: 3,
    EventState.CANCELLED: 3,
}


@attrs.frozen
class StatusUpdate:
    """A change to an event's progress, from the dispatcher or from an agent's report."""

    at: float
    state: EventState
    phase: Phase | None = None
    message: str = ""
    resources: tuple[ResourceResult, ...] | None = None
    """``None`` keeps what the record has; a report with results replaces them."""


def advance(record: EventRecord, update: StatusUpdate) -> EventRecord | None:
    """The record after ``update``, or ``None`` when the update must not apply.

    A terminal state is final: nothing moves a completed, failed or expired event. Otherwise
    states only move forward, except ``assigned`` → ``queued`` (sent to an agent that went away
    before acknowledging). Only a ``queued`` event can be ``cancelled``: one that was sent may
    be running on its agent, and ends as it ends there. A report that changes nothing adds
    nothing to the timeline, nor does one whose line is in it already (the same time, state,
    phase and message: a report sent again, by an agent whose control plane died after storing
    it and before acknowledging it; applying it again would move the event back a phase and
    show the line twice).
    """
    if record.state.terminal:
        return None
    if update.state is EventState.CANCELLED and record.state is not EventState.QUEUED:
        return None
    forward = _RANK[update.state] >= _RANK[record.state]
    requeue = record.state is EventState.ASSIGNED and update.state is EventState.QUEUED
    if not (forward or requeue):
        return None
    resources = record.resources if update.resources is None else update.resources
    changed = (update.state, update.phase, update.message) != (
        record.state,
        record.phase,
        record.message,
    )
    if not changed and resources == record.resources:
        return None
    timeline = record.timeline
    if changed:
        entry = TimelineEntry(update.at, update.state, update.phase, update.message)
        if entry in timeline:
            return None
        timeline = (*timeline, entry)
    return attrs.evolve(
        record,
        state=update.state,
        phase=update.phase,
        message=update.message,
        resources=resources,
        timeline=timeline,
        updated_at=update.at,
    )


def accepted(record: EventRecord) -> EventRecord:
    """A freshly accepted record: queued, with the first line of its timeline."""
    at = record.event.created_at
    return attrs.evolve(
        record,
        state=EventState.QUEUED,
        timeline=(TimelineEntry(at, EventState.QUEUED, None, "accepted"),),
        updated_at=at,
    )
