"""Routing: accepted events into agents' outboxes, outboxes onto connections, reports into the
store, and expiry of events whose TTL passed.

The outbox is the store's (it survives restarts and costs no memory here). Each connection has a
delivery task that reads the agent's unfinished events in order and sends those not yet sent on
that connection, at most ``window`` at a time; a new connection therefore redelivers everything
unfinished, which the agent de-duplicates by event id. An event the agent has not acknowledged
(``received``) within ``ack_timeout`` is sent again on the same connection.
"""

from __future__ import annotations

import logging
import time

import trio

from transporter.cp.registry import Connection, Registry
from transporter.cp.signer import EventSigner
from transporter.cp.watch import EventWatch
from transporter.cp.writer import Pending, StatusWriter
from transporter.protocol import codec
from transporter.protocol.messages import BATCHES, Deliver
from transporter.protocol.model import AuditEntry, Event, EventRecord, EventState
from transporter.protocol.status import StatusUpdate
from transporter.store.base import EventConflict, Store, StoreUnavailable

log = logging.getLogger(__name__)

WINDOW = 256
"""Events in flight to one agent at most; the agent's own concurrency limit is smaller."""
ACK_TIMEOUT = 30.0
"""Seconds an agent has to acknowledge a delivery before it is sent again."""
BATCH_EVENTS = 64
"""Events sent in one ``deliveries`` message at most (protocol 2)."""
BATCH_BYTES = 512 * 1024
"""Bytes of events (as sent) in one ``deliveries`` message at most; a larger event goes alone
(an event is at most the agent's message limit, so it always fits in a message of its own)."""
EXPIRY_INTERVAL = 1.0
PRUNE_INTERVAL = 5.0


class Hub:
    """The control plane's shared state between the API, the agent channel and the store."""

    def __init__(
        self,
        store: Store,
        signer: EventSigner,
        *,
        window: int = WINDOW,
        shared_store: bool = False,
    ) -> None:
        self.store = store
        self.signer = signer
        """Signs every event before it is stored: agents refuse events that do not match."""
        self.writer = StatusWriter(store)
        self.shared_store = shared_store
        """Whether other control-plane replicas write to the same store (Redis)."""
        self.registry = Registry()
        self.watch = EventWatch()
        self.window = window
        self._known_agents: set[str] = set()
        """Agents known to have registered (they are never forgotten, so a hit is final)."""

    # --- from the API -----------------------------------------------------------------------

    async def accept(self, event: Event) -> tuple[EventRecord, bool]:
        (event,) = await self.signer.sign_many([event])
        audit = _accepted_audit(event)
        record, created = await self.store.submit(event, audit)
        if created:
            self.registry.ring(event.target_agent)
        return record, created

    async def accept_many(
        self, events: list[Event]
    ) -> list[tuple[EventRecord, bool] | EventConflict]:
        """Like :meth:`accept` for each event, in one durable write."""
        events = await self.signer.sign_many(events)
        audits = [_accepted_audit(event) for event in events]
        results = await self.store.submit_many(list(zip(events, audits, strict=True)))
        for event, result in zip(events, results, strict=True):
            if not isinstance(result, EventConflict) and result[1]:
                self.registry.ring(event.target_agent)
        return results

    def agent_registered(self, agent_id: str) -> None:
        self._known_agents.add(agent_id)

    async def agent_known(self, agent_id: str) -> bool:
        if agent_id not in self._known_agents:
            if await self.store.get_agent(agent_id) is None:
                return False
            self._known_agents.add(agent_id)
        return True

    # --- from agents ------------------------------------------------------------------------

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
        event_id = pending.event_id
        self.watch.changed(event_id, record)
        if record.state.terminal:
            connection = self.registry.get(agent_id)
            if connection is not None and event_id in connection.in_flight:
                connection.in_flight.discard(event_id)
                connection.acknowledged(event_id)
                connection.outbox_bell.ring()
        return record

    # --- delivery ---------------------------------------------------------------------------

    async def deliver(self, connection: Connection, *, ack_timeout: float = ACK_TIMEOUT) -> None:
        """Send the agent its unfinished events, oldest first, until the connection ends.

        Each event is read from the store once (after the last ``seq`` sent); a new connection
        starts from the beginning, so everything unfinished is delivered again. A delivery not
        acknowledged within ``ack_timeout`` is sent again.
        """
        last_seq = 0
        while True:
            room = self.window - len(connection.in_flight)
            if room > 0:
                now = time.time()
                written: list[tuple[AuditEntry, Pending]] = []
                sending: list[Event] = []
                for seq, event in await self.store.outbox(
                    connection.agent_id, after=last_seq, limit=room
                ):
                    last_seq = seq
                    if event.expires_at <= now:
                        continue  # the expiry task ends it; it is never sent after its TTL
                    # Recorded before it is sent, so that it is in the store before the agent's
                    # answer (which the agent's reader hands to the same writer).
                    written.append(await self._delivering(event, now))
                    sending.append(event)
                await self._send_many(connection, sending)
                await self._delivered(written)
            await self._resend_unacknowledged(connection, ack_timeout)
            # Rung on new events and on finished ones (a slot is free again); otherwise awake
            # when the oldest unacknowledged delivery is due again.
            wait = PRUNE_INTERVAL
            if connection.unacked:
                due = min(connection.unacked.values()) + ack_timeout - trio.current_time()
                wait = max(0.0, min(wait, due))
            with trio.move_on_after(wait) as idle:
                await connection.outbox_bell.wait()
            if idle.cancelled_caught and connection.in_flight:
                # Events ended by another replica (expired there) free their slots too.
                alive = {
                    e.id for _, e in await self.store.outbox(connection.agent_id, limit=self.window)
                }
                connection.in_flight &= alive
                for gone in connection.unacked.keys() - alive:
                    connection.acknowledged(gone)

    async def _send(self, connection: Connection, event: Event) -> None:
        _sending(connection, event)
        await connection.send(Deliver(event))

    async def _send_many(self, connection: Connection, events: list[Event]) -> None:
        """Send ``events`` in order: in ``deliveries`` batches when the agent speaks them."""
        if connection.protocol < BATCHES:
            for event in events:
                await self._send(connection, event)
            return
        encoded = [codec.encode_event(event) for event in events]
        for batch in batches([len(text) for text in encoded]):
            for index in batch:
                _sending(connection, events[index])
            if len(batch) == 1:
                await connection.send_text(codec.deliver_text(encoded[batch[0]]))
            else:
                await connection.send_text(codec.deliveries_text([encoded[i] for i in batch]))

    async def _resend_unacknowledged(self, connection: Connection, ack_timeout: float) -> None:
        """Send again what the agent did not acknowledge in time (and is not finished)."""
        now = trio.current_time()
        due = [
            event_id for event_id, sent in connection.unacked.items() if now - sent >= ack_timeout
        ]
        for event_id in due:
            record = await self.store.get_event(event_id)
            if event_id not in connection.unacked:
                continue  # acknowledged meanwhile
            if record is None or record.state.terminal:
                connection.in_flight.discard(event_id)
                connection.acknowledged(event_id)
                continue
            log.warning(
                "agent %s did not acknowledge event %s within %g s; sending it again",
                connection.agent_id,
                event_id,
                ack_timeout,
            )
            await self._send(connection, record.event)
            await self.store.audit(
                AuditEntry(
                    at=time.time(),
                    action="event.delivered",
                    agent_id=connection.agent_id,
                    event_id=event_id,
                    detail=f"again: not acknowledged within {ack_timeout:g} s",
                )
            )

    async def _delivering(self, event: Event, now: float) -> tuple[AuditEntry, Pending]:
        """Hand the writer the record that ``event`` is sent (``assigned``, and audited).

        Deliveries are written in the order sent, together in the writer's next group commit:
        not one commit after each event, which would hold a backlog to a few dozen a second.
        """
        update = StatusUpdate(at=now, state=EventState.ASSIGNED, message="sent to agent")
        audit = AuditEntry(
            at=now, action="event.delivered", agent_id=event.target_agent, event_id=event.id
        )
        return audit, await self.writer.enqueue(event.id, update, audit)

    async def _delivered(self, written: list[tuple[AuditEntry, Pending]]) -> None:
        """Wait for the records of :meth:`_delivering`; wake those watching the events."""
        for audit, pending in written:
            record = await pending.wait()
            if record is not None:
                self.watch.changed(audit.event_id, record)
            else:
                # A redelivery of an event already in progress: the audit still says it was sent.
                await self.store.audit(audit)

    # --- expiry -----------------------------------------------------------------------------

    async def run(self) -> None:
        """The hub's own tasks: the status writer and expiry. Runs until cancelled."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.writer.run)
            nursery.start_soon(self.expire_forever)

    async def expire_forever(self, *, interval: float = EXPIRY_INTERVAL) -> None:
        """End events whose TTL passed; a store outage pauses this, it never ends it."""
        outage = False
        while True:
            try:
                await self._expire(time.time())
            except StoreUnavailable as exc:
                if not outage:
                    log.warning("expiry paused: %s", exc)
                outage = True
            else:
                if outage:
                    log.info("expiry resumed: the store answers again")
                outage = False
            await trio.sleep(interval)

    async def _expire(self, now: float) -> None:
        for event_id in await self.store.expiring(now):
            record = await self.store.get_event(event_id)
            if record is None:
                continue
            await self.update(
                event_id,
                record.event.target_agent,
                StatusUpdate(
                    at=now, state=EventState.EXPIRED, message="TTL passed before the event finished"
                ),
            )


def _sending(connection: Connection, event: Event) -> None:
    """``event`` goes out on ``connection`` now: in flight, and unacknowledged from now."""
    connection.in_flight.add(event.id)
    connection.unacked[event.id] = trio.current_time()


def batches(sizes: list[int]) -> list[list[int]]:
    """The indexes of events of these ``sizes`` (bytes as sent), in order, in batches of at
    most :data:`BATCH_EVENTS` events and :data:`BATCH_BYTES` bytes (a larger event in a batch
    of its own)."""
    made: list[list[int]] = []
    batch: list[int] = []
    total = 0
    for index, size in enumerate(sizes):
        if batch and (len(batch) == BATCH_EVENTS or total + size > BATCH_BYTES):
            made.append(batch)
            batch, total = [], 0
        batch.append(index)
        total += size
    if batch:
        made.append(batch)
    return made


def _accepted_audit(event: Event) -> AuditEntry:
    return AuditEntry(
        at=event.created_at,
        action="event.accepted",
        actor=event.created_by,
        agent_id=event.target_agent,
        event_id=event.id,
        detail=f"{event.payload.action.value} {len(event.payload.manifests)} manifest(s)",
    )
