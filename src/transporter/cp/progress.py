"""How events go, recorded: agents' reports, deliveries and expiries written to the store in
order (group commits), then whoever waits on the event woken and its slot on the agent's
connection freed when it ended."""

from __future__ import annotations

from collections.abc import Callable

from transporter.cp.group_commit import GroupCommit, Pending
from transporter.cp.live import LiveAgents
from transporter.cp.metrics import CpMetrics
from transporter.cp.watch import EventWatch
from transporter.protocol.model import AuditEntry, Event, EventRecord, EventState
from transporter.protocol.status import StatusUpdate
from transporter.store.base import Sending, Store


class Progress:
    """Writes events' progress (one per control plane)."""

    def __init__(
        self,
        store: Store,
        live: LiveAgents,
        watch: EventWatch,
        *,
        metrics: CpMetrics | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics or CpMetrics()
        self.live = live
        self.watch = watch
        self.writer = GroupCommit(store)
        self.on_rollout_event: Callable[[EventRecord], None] | None = None
        """Told of every change written to a rollout's child event (the rollout engine)."""

    async def run(self) -> None:
        """The group commit's writer; runs until cancelled."""
        await self.writer.run()

    async def update(
        self, event_id: str, agent_id: str, update: StatusUpdate
    ) -> EventRecord | None:
        """Record a state change of one of ``agent_id``'s events, with the audit entry of a
        final state in the same write; wakes watchers and frees the agent's slot at the end."""
        return await self.updated(await self.enqueue(event_id, agent_id, update), agent_id)

    async def enqueue(self, event_id: str, agent_id: str, update: StatusUpdate) -> Pending:
        """The first half of :meth:`update`: handed to the writer, in order, not yet written.
        Pass the result to :meth:`updated`."""
        audit = None
        if update.state.terminal:
            audit = AuditEntry(
                at=update.at,
                action=f"event.{update.state.value}",
                agent_id=agent_id,
                event_id=event_id,
                detail=update.message,
            )
        return await self.writer.enqueue(event_id, update, audit)

    async def updated(self, pending: Pending, agent_id: str) -> EventRecord | None:
        """The second half of :meth:`update`: once written, wake watchers, free the slot."""
        record = await pending.wait()
        if record is None:
            return None
        self.watch.changed(pending.event_id, record)
        if record.state.terminal:  # it applied, so this is the write that ended the event
            self.metrics.event_ended(record)
            self.live.finished(agent_id, pending.event_id)
        if record.event.rollout_id and self.on_rollout_event is not None:
            self.on_rollout_event(record)
        return record

    async def delivering(self, event: Event, now: float) -> tuple[Event, AuditEntry, Pending]:
        """Hand the writer the record that ``event`` is sent (``assigned``, and audited).

        Deliveries are written in the order sent, together in the writer's next group commit:
        not one commit after each event, which would hold a backlog to a few dozen a second.
        """
        update, audit = sent_update(event, now)
        return event, audit, await self.writer.enqueue(event.id, update, audit)

    async def delivered(self, written: list[tuple[Event, AuditEntry, Pending]]) -> list[Event]:
        """Wait for the records of :meth:`delivering`; wake those watching the events. Returns
        the events to send, in order: not one whose ``assigned`` did not apply because it was
        cancelled (or ended) after the outbox was read, so a cancel that was answered
        ``cancelled`` is never sent. One already sent (in progress, say: a reconnect) is sent
        again, and its audit still says so."""
        sending: list[Event] = []
        for event, audit, pending in written:
            record = await pending.wait()
            if record is not None:
                self.watch.changed(audit.event_id, record)
                sending.append(event)
                continue
            current = await self.store.get_event(event.id)
            if current is None or current.state.terminal:
                continue  # cancelled (or ended elsewhere) since the outbox was read
            self.metrics.redelivered("reconnect")
            await self.store.audit(audit)
            sending.append(event)
        return sending


def sent_update(event: Event, now: float) -> tuple[StatusUpdate, AuditEntry]:
    """What records ``event`` sent to its agent at ``now``: its ``assigned`` update and its
    ``event.delivered`` audit entry."""
    update = StatusUpdate(at=now, state=EventState.ASSIGNED, message="sent to agent")
    audit = AuditEntry(
        at=now, action="event.delivered", agent_id=event.target_agent, event_id=event.id
    )
    return update, audit


def sent(event: Event, now: float, *, after: int) -> Sending:
    """:func:`sent_update`, for ``event`` stored sent as it is accepted, its connection having
    read up to ``after`` (:class:`~transporter.store.base.Sending`)."""
    update, audit = sent_update(event, now)
    return Sending(after=after, update=update, audit=audit)
