"""What ``approve``, ``cancel`` and ``close`` change in a rollout's record (pure): each a
:data:`~.mover.Change`, applied over the version read and tried again when another writer
won; the engine's next step does the rest (starts the wave, cancels the children)."""

from __future__ import annotations

import attrs

from transporter.cp.rollout.errors import NothingToApprove
from transporter.cp.rollout.mover import Change, Made
from transporter.cp.rollout.step import audit
from transporter.protocol.rollout import RolloutEntry, RolloutRecord, RolloutState


def awaiting(record: RolloutRecord) -> int | None:
    """The wave that awaits approval, if one does."""
    if record.state is not RolloutState.AWAITING_APPROVAL:
        return None
    for entry in reversed(record.timeline):
        if entry.what == "awaiting_approval":
            return entry.wave
    return None


def approving(wave: int | None, actor: str, now: float) -> Change:
    """Release the wave that waits (``wave``: it must be that one)."""

    def change(record: RolloutRecord) -> Made:
        waiting = awaiting(record)
        if waiting is None:
            raise NothingToApprove(
                f"rollout {record.spec.id!r} is {record.state.value}: no wave awaits approval"
            )
        if wave is not None and wave != waiting:
            raise NothingToApprove(
                f"wave {wave + 1} (index {wave}) does not await approval;"
                f" wave {waiting + 1} (index {waiting}) does"
            )
        why = f"wave {waiting + 1} approved by {actor}"
        return attrs.evolve(
            record,
            approved=(*record.approved, waiting),
            state=RolloutState.RUNNING,
            message=why,
            timeline=(*record.timeline, RolloutEntry(now, "approved", why, waiting)),
        ), [audit(record, now, "rollout.approved", why, actor)]

    return change


def cancelling(actor: str, now: float) -> Change:
    """Start nothing more (once: a second cancel changes nothing)."""

    def change(record: RolloutRecord) -> Made:
        if record.cancel_requested or record.state.final:
            return None
        why = f"cancelled by {actor}"
        return attrs.evolve(
            record,
            cancel_requested=True,
            message=why,
            timeline=(*record.timeline, RolloutEntry(now, "cancelled", why)),
        ), [audit(record, now, "rollout.cancelled", why, actor)]

    return change


def closing(actor: str, now: float) -> Change:
    """A standing rollout takes no new agent (others: nothing changes)."""

    def change(record: RolloutRecord) -> Made:
        if not record.spec.standing or record.closed or record.state.final:
            return None
        why = f"closed by {actor}"
        return attrs.evolve(
            record, closed=True, timeline=(*record.timeline, RolloutEntry(now, "closed", why))
        ), [audit(record, now, "rollout.closed", why, actor)]

    return change
