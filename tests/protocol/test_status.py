"""The rules of an event's progress (:mod:`transporter.protocol.status`): forward only, and
terminal is final."""

from __future__ import annotations

import attrs
import pytest

from tests.bed.records import SMALL_EVENT
from transporter.protocol.model import EventRecord, EventState, Phase
from transporter.protocol.status import StatusUpdate, accepted, advance

EVENT = SMALL_EVENT


def _queued() -> EventRecord:
    return accepted(EventRecord(EVENT, seq=1))


def test_progress_moves_forward_and_terminal_is_final() -> None:
    record = accepted(EventRecord(EVENT, seq=1))
    assert record.state is EventState.QUEUED and len(record.timeline) == 1
    assigned = advance(record, StatusUpdate(at=1, state=EventState.ASSIGNED))
    assert assigned is not None and assigned.state is EventState.ASSIGNED
    requeued = advance(assigned, StatusUpdate(at=2, state=EventState.QUEUED))
    assert requeued is not None and requeued.state is EventState.QUEUED
    working = advance(
        assigned, StatusUpdate(at=3, state=EventState.IN_PROGRESS, phase=Phase.APPLYING)
    )
    assert working is not None
    assert advance(working, StatusUpdate(at=4, state=EventState.ASSIGNED)) is None
    assert (
        advance(working, StatusUpdate(at=4, state=EventState.IN_PROGRESS, phase=Phase.APPLYING))
        is None
    )  # no change, no entry
    done = advance(
        working,
        StatusUpdate(
            at=5,
            state=EventState.COMPLETED,
            phase=Phase.COMPLETED,
            message="1 created",
            resources=(),
        ),
    )
    assert done is not None
    assert [entry.state for entry in done.timeline] == [
        EventState.QUEUED,
        EventState.ASSIGNED,
        EventState.IN_PROGRESS,
        EventState.COMPLETED,
    ]
    assert advance(done, StatusUpdate(at=6, state=EventState.FAILED)) is None
    assert advance(done, StatusUpdate(at=6, state=EventState.EXPIRED)) is None


@pytest.mark.parametrize("state", [s for s in EventState if s is not EventState.QUEUED])
def test_only_a_queued_event_can_be_cancelled(state: EventState) -> None:
    record = attrs.evolve(_queued(), state=state)
    assert advance(record, StatusUpdate(at=2.0, state=EventState.CANCELLED)) is None


def test_a_queued_event_is_cancelled_for_good() -> None:
    cancelled = advance(_queued(), StatusUpdate(at=2.0, state=EventState.CANCELLED, message="by x"))
    assert cancelled is not None and cancelled.state is EventState.CANCELLED
    for state in (EventState.ASSIGNED, EventState.IN_PROGRESS, EventState.COMPLETED):
        assert advance(cancelled, StatusUpdate(at=3.0, state=state)) is None
