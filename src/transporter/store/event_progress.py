"""How far an event got, without its payload: what a rollout's engine reads of its children."""

from __future__ import annotations

import attrs

from transporter.protocol.model import EventRecord, EventState, Phase, ResourceStatus


@attrs.frozen
class EventProgress:
    """What a rollout's engine needs of a child event, every few seconds: who it is for and how
    far it got, without its payload (manifests: megabytes) nor its results' detail (a plan's
    diffs). Read by :meth:`EventStore.event_progress` without reading or decoding either."""

    event_id: str
    target_agent: str
    rollout_id: str
    state: EventState
    phase: Phase | None
    message: str
    updated_at: float
    created_at: float
    expires_at: float
    resource_statuses: tuple[ResourceStatus, ...] = ()
    """The status of each object's result, in the results' order (``drifted`` among them ...)."""

    @classmethod
    def of(cls, record: EventRecord) -> EventProgress:
        """What :meth:`EventStore.event_progress` says of ``record``, from the whole record (a
        child just stored, or one read by :meth:`EventStore.get_events`)."""
        event = record.event
        return cls(
            event_id=event.id,
            target_agent=event.target_agent,
            rollout_id=event.rollout_id,
            state=record.state,
            phase=record.phase,
            message=record.message,
            updated_at=record.updated_at,
            created_at=event.created_at,
            expires_at=event.expires_at,
            resource_statuses=tuple(result.status for result in record.resources),
        )
