"""Routing: accepted events into agents' outboxes, outboxes onto connections, reports into the
store, and expiry of events whose TTL passed.

The outbox is the store's (it survives restarts and costs no memory here). Each connection has a
delivery task that reads the agent's unfinished events in order and sends those not yet sent on
that connection, at most ``window`` at a time; a new connection therefore redelivers everything
unfinished, which the agent de-duplicates by event id.
"""

from __future__ import annotations

import logging
import time

import trio

from transporter.cp.registry import Connection, Registry
from transporter.cp.watch import EventWatch
from transporter.protocol.messages import Deliver
from transporter.protocol.model import AuditEntry, Event, EventRecord, EventState
from transporter.protocol.status import StatusUpdate
from transporter.store.base import Store

log = logging.getLogger(__name__)

WINDOW = 256
"""Events in flight to one agent at most; the agent's own concurrency limit is smaller."""
EXPIRY_INTERVAL = 1.0


class Hub:
    """The control plane's shared state between the API, the agent channel and the store."""

    def __init__(self, store: Store, *, window: int = WINDOW, shared_store: bool = False) -> None:
        self.store = store
        self.shared_store = shared_store
        """Whether other control-plane replicas write to the same store (Redis)."""
        self.registry = Registry()
        self.watch = EventWatch()
        self.window = window

    # --- from the API -----------------------------------------------------------------------

    async def accept(self, event: Event) -> tuple[EventRecord, bool]:
        audit = AuditEntry(
            at=event.created_at,
            action="event.accepted",
            actor=event.created_by,
            agent_id=event.target_agent,
            event_id=event.id,
            detail=f"{event.payload.action.value} {len(event.payload.manifests)} manifest(s)",
        )
        record, created = await self.store.submit(event, audit)
        if created:
            self.registry.ring(event.target_agent)
        return record, created

    # --- from agents ------------------------------------------------------------------------

    async def update(self, event_id: str, update: StatusUpdate) -> EventRecord | None:
        """Record a state change; wakes watchers, audits and frees the agent's slot at the end."""
        record = await self.store.update_event(event_id, update)
        if record is None:
            return None
        self.watch.changed(event_id)
        if record.state.terminal:
            agent_id = record.event.target_agent
            await self.store.audit(
                AuditEntry(
                    at=update.at,
                    action=f"event.{record.state.value}",
                    actor=record.event.created_by,
                    agent_id=agent_id,
                    event_id=event_id,
                    detail=record.message,
                )
            )
            connection = self.registry.get(agent_id)
            if connection is not None and event_id in connection.in_flight:
                connection.in_flight.discard(event_id)
                connection.outbox_bell.ring()
        return record

    # --- delivery ---------------------------------------------------------------------------

    async def deliver(self, connection: Connection) -> None:
        """Send the agent its unfinished events, oldest first, until the connection ends."""
        sent: set[str] = set()
        while True:
            room = self.window - len(connection.in_flight)
            if room > 0:
                pending = await self.store.outbox(connection.agent_id, limit=self.window)
                alive = {event.id for event in pending}
                # Events that ended (or expired) while we were not looking free their slots.
                connection.in_flight &= alive
                sent &= alive
                now = time.time()
                for event in pending:
                    if event.id in sent:
                        continue
                    if len(connection.in_flight) >= self.window:
                        break
                    if event.expires_at <= now:
                        continue  # the expiry task ends it; it is never sent after its TTL
                    await connection.send.send(Deliver(event))
                    sent.add(event.id)
                    connection.in_flight.add(event.id)
                    await self._delivered(event, now)
            # Rung on new events and finished ones; the timeout covers other replicas' writes.
            with trio.move_on_after(5.0):
                await connection.outbox_bell.wait()

    async def _delivered(self, event: Event, now: float) -> None:
        record = await self.store.update_event(
            event.id, StatusUpdate(at=now, state=EventState.ASSIGNED, message="sent to agent")
        )
        if record is not None:
            self.watch.changed(event.id)
        await self.store.audit(
            AuditEntry(
                at=now, action="event.delivered", agent_id=event.target_agent, event_id=event.id
            )
        )

    # --- expiry -----------------------------------------------------------------------------

    async def expire_forever(self, *, interval: float = EXPIRY_INTERVAL) -> None:
        while True:
            now = time.time()
            for event_id in await self.store.expiring(now):
                await self.update(
                    event_id,
                    StatusUpdate(
                        at=now,
                        state=EventState.EXPIRED,
                        message="TTL passed before the event finished",
                    ),
                )
            await trio.sleep(interval)
