"""Outboxes onto connections: a connection's delivery task sends the agent its unfinished
events, oldest first, as many as its window has room for, and again what it does not
acknowledge in time.

The outbox is the store's (it survives restarts and costs no memory here): each connection
reads the agent's unfinished events in order and sends those not yet sent on it; a new
connection therefore redelivers everything unfinished, which the agent de-duplicates by id.

A connection's delivery task runs only while there is work: from its bell's ring (an event
stored for the agent, here or, through the store's hints (:mod:`.replicas`), on another
replica; or a slot freed while the window held events back) until nothing is in flight or
left to send. Only such a ring reads the outbox again: an event that ends otherwise wakes the
task without a read (one read per event stored, not one more per event ended). An idle
connection has none (10,000 agents at rest cost no task each for this). Besides, every
connection's outbox is looked at once every :data:`~.replicas.REPLICA_LOOK` seconds or so
(jittered per connection): a safety net for a hint that was missed. A connection with events
in flight looks itself; the looks of idle ones are asked together
(:meth:`Delivery.look_after`): which of these agents have anything unfinished, in one read;
only those start a task.

A new connection's first look is asked together with the others welcomed meanwhile
(:class:`.first_looks.Looks`). An event stored for an agent after that read rings its bell
(the connection is live before its delivery starts, and the bell stays rung until waited
for), so it is read at the next turn of the loop: nothing is missed between the question and
the wait.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence

import trio

from transporter.cp.first_looks import Looks, unfinished_among
from transporter.cp.group_commit import Pending
from transporter.cp.live import Connection, LiveAgents
from transporter.cp.metrics import CpMetrics
from transporter.cp.progress import Progress
from transporter.cp.replicas import REPLICA_LOOK
from transporter.logs import about
from transporter.protocol import codec
from transporter.protocol.messages import BATCHES, Deliver
from transporter.protocol.model import AuditEntry, Event, EventRecord
from transporter.store.base import Store, StoreError

log = logging.getLogger(__name__)

ACK_TIMEOUT = 30.0
"""Seconds an agent has to acknowledge a delivery before it is sent again."""
BATCH_EVENTS = 64
"""Events sent in one ``deliveries`` message at most (protocol 2)."""
BATCH_BYTES = 512 * 1024
"""Bytes of events (as sent) in one ``deliveries`` message at most; a larger event goes alone
(an event is at most the agent's message limit, so it always fits in a message of its own)."""
LOOK_JITTER = 0.25
"""Each look comes within this share of the interval either side of it."""
EXPRESS_SEND = 5.0
"""Seconds an event sent at once (:meth:`Delivery.express`) may take to go out on an idle
connection before the connection is closed (its agent then dials again and gets it)."""
SAFETY_GATHER = 1.0
"""Seconds between the rounds of idle connections' safety looks: 10,000 connections looking
every 30 s make a read a second (of about 333 agents) instead of 333 reads a second."""


class Delivery:
    """Sends connections their agents' outboxes (one per control plane)."""

    def __init__(
        self,
        store: Store,
        progress: Progress,
        *,
        ack_timeout: float = ACK_TIMEOUT,
        look: float = REPLICA_LOOK,
        metrics: CpMetrics | None = None,
        gather: float = SAFETY_GATHER,
    ):
        self.store = store
        self.progress = progress
        self.ack_timeout = ack_timeout
        self.look = look
        """Seconds between a connection's looks at its outbox without a ring (a hint missed)."""
        self.metrics = metrics or progress.metrics
        self.gather = gather
        self.first_looks = Looks(store)
        self._rng = random.Random()  # noqa: S311 - jitter, not secrets

    async def run(self, connection: Connection) -> None:
        """Deliver to ``connection`` until cancelled (:meth:`serve` in a nursery of its own)."""
        try:
            async with trio.open_nursery() as nursery:
                self.serve(connection, nursery)
                await trio.sleep_forever()
        finally:
            self.stop(connection)

    def serve(self, connection: Connection, nursery: trio.Nursery) -> None:
        """Deliver to ``connection`` from now on: its first look at once, then a task of
        ``nursery`` whenever it rings and none runs. Call :meth:`stop` before ``nursery``
        closes."""
        connection.look_at = trio.current_time() + self._next_look()
        connection.work = nursery
        connection.courier = self
        connection.delivering = True
        nursery.start_soon(self._deliver, connection, True)

    def stop(self, connection: Connection) -> None:
        """No more tasks for ``connection`` (it is ending)."""
        connection.courier = connection.work = None

    def start(self, connection: Connection) -> None:
        if not connection.delivering and connection.work is not None:
            connection.delivering = True
            connection.work.start_soon(self._deliver, connection, False)

    async def express(
        self, connection: Connection, claimed: int, sent: Sequence[EventRecord]
    ) -> bool:
        """See :meth:`.live.Courier.express`. The outbox held nothing unfinished after
        ``claimed`` when ``sent`` was stored, so the connection has read up to them, unless a
        safety look set it to read again from the start meanwhile.

        ``sent`` goes out in the caller's task, before its request is answered: the event is
        on its way first. Shielded (a message half-written would break the connection) and
        bounded by :data:`EXPRESS_SEND`: a connection that takes no more in that time, or
        that broke, is closed, and the agent's next connection reads what it did not get."""
        work = connection.work
        if work is None or connection.courier is not self:
            return False  # ended: its delivery is over
        if not sent:
            connection.delivering = False
            if connection.news:
                self.start(connection)
            return True
        if connection.sent_seq == claimed:
            connection.sent_seq = max(record.seq for record in sent)
        try:
            with trio.CancelScope(shield=True), trio.move_on_after(EXPRESS_SEND) as late:
                await self._send_many(connection, [record.event for record in sent])
            if late.cancelled_caught:
                connection.cancel_scope.cancel()
        except Exception as exc:  # the connection broke: its reader ends it
            log.debug("agent %s: sending at once failed: %s", connection.agent_id, exc)
            connection.cancel_scope.cancel()
        if connection.work is work and connection.courier is self:
            work.start_soon(self._deliver, connection, False)  # acknowledgements, resends
        # else it ended during the send: the event is in its window, which its end puts back
        # in the queue (roster.left), or its agent's next connection reads it
        return True

    async def _deliver(self, connection: Connection, first: bool) -> None:
        """Send the agent its unfinished events, oldest first, while there are any to send
        or in flight.

        Each event is read from the store once (after the last ``seq`` sent on this
        connection); a delivery not acknowledged within ``ack_timeout`` is sent again. Ends
        when the window is empty and the bell has not rung: no await between that look and
        the end, so a ring after it starts another task."""
        window = connection.window
        try:
            if first and await self.first_looks.anything_for(connection.agent_id):
                connection.news = True  # or rung meanwhile: that stays
            while True:
                if window.room > 0 and connection.news:
                    connection.news = False  # a ring during the read sets it again
                    connection.sent_seq = await self._send_new(connection, connection.sent_seq)
                await self._resend_unacknowledged(connection)
                if not len(window) and not connection.outbox_bell.rung:
                    return
                # Rung on new events and on finished ones (news only if held back); otherwise
                # awake when the oldest unacknowledged delivery is due again, or for the look.
                wait = connection.look_at - trio.current_time()
                due = window.next_due(self.ack_timeout)
                if due is not None:
                    wait = min(wait, due - trio.current_time())
                with trio.move_on_after(max(0.0, wait)):
                    await connection.outbox_bell.wait()
                if trio.current_time() >= connection.look_at and len(window):
                    # events ended elsewhere (a hint missed) free their slots
                    connection.look_at = trio.current_time() + self._next_look()
                    outbox = await self.store.outbox(connection.agent_id, limit=window.size)
                    window.keep_only(event.id for _, event in outbox)
                    if any(event.id not in window for _, event in outbox):
                        connection.sent_seq = 0  # unfinished, not in flight: read it again
                        connection.news = True
        finally:
            connection.delivering = False

    async def look_after(self, live: LiveAgents) -> None:
        """The safety looks of the connections with no delivery task, asked together: every
        ``gather`` seconds, those whose look is due, in one read per :data:`MAX_LIMIT`
        agents; those with anything unfinished are rung (which starts their task). A store
        outage is logged and the looks come again at the next turn."""
        failed = False
        while True:
            await trio.sleep(self.gather)
            now = trio.current_time()
            due = [c for c in live.all() if not c.delivering and c.look_at <= now]
            if not due:
                continue
            for connection in due:
                connection.look_at = now + self._next_look()
            try:
                found = await unfinished_among(self.store, {c.agent_id for c in due})
            except StoreError as exc:
                if not failed:
                    log.warning("the outboxes' safety looks failed (tried again): %s", exc)
                failed = True
                continue
            failed = False
            for connection in due:
                if connection.agent_id in found:
                    # Idle, with something unfinished: none of it is in flight, so its outbox
                    # is read from the start. An outbox ``seq`` can go back: a Redis failover
                    # loses the old primary's last writes, its counter's too, and new events
                    # then come below what this connection read (they stayed queued for good).
                    connection.sent_seq = 0
                    connection.ring()

    def _next_look(self) -> float:
        return self.look * self._rng.uniform(1 - LOOK_JITTER, 1 + LOOK_JITTER)

    async def _send_new(self, connection: Connection, last_seq: int) -> int:
        """Send what came after ``last_seq``; returns the last ``seq`` read.

        Each event is recorded ``assigned`` before it is sent (so that it is in the store before
        the agent's answer, which the agent's reader hands to the same writer), and sent only
        once that write is done: an event cancelled between the outbox's read and its
        ``assigned`` write is not sent (the cancel won; :meth:`Progress.delivered`)."""
        now = time.time()
        written: list[tuple[Event, AuditEntry, Pending]] = []
        room = connection.window.room
        outbox = await self.store.outbox(connection.agent_id, after=last_seq, limit=room)
        connection.held_back = len(outbox) >= room
        for seq, event in outbox:
            last_seq = seq
            if event.id in connection.window:
                continue  # in flight already (read again from the start after a look)
            if event.expires_at <= now:
                continue  # the expiry task ends it; it is never sent after its TTL
            written.append(await self.progress.delivering(event, now))
        await self._send_many(connection, await self.progress.delivered(written))
        return last_seq

    async def _send_many(self, connection: Connection, events: list[Event]) -> None:
        """Send ``events`` in order: in ``deliveries`` batches when the agent speaks them."""
        if connection.protocol < BATCHES:
            for event in events:
                connection.window.sending(event.id, trio.current_time())
                await connection.send(Deliver(event))
            return
        encoded = [codec.encode_event(event) for event in events]
        for batch in batches([len(text) for text in encoded]):
            for index in batch:
                connection.window.sending(events[index].id, trio.current_time())
            if len(batch) == 1:
                await connection.send_text(codec.deliver_text(encoded[batch[0]]))
            else:
                await connection.send_text(codec.deliveries_text([encoded[i] for i in batch]))

    async def _resend_unacknowledged(self, connection: Connection) -> None:
        """Send again what the agent did not acknowledge in time (and is not finished)."""
        window = connection.window
        for event_id in window.due(trio.current_time(), self.ack_timeout):
            record = await self.store.get_event(event_id)
            if not window.waiting_for_ack(event_id):
                continue  # acknowledged meanwhile
            if record is None or record.state.terminal:
                window.finished(event_id)
                continue
            log.warning(
                "agent %s did not acknowledge event %s within %g s; sending it again",
                connection.agent_id,
                event_id,
                self.ack_timeout,
                extra=about(agent_id=connection.agent_id, event_id=event_id),
            )
            window.sending(event_id, trio.current_time())
            self.metrics.redelivered("ack_timeout")
            await connection.send(Deliver(record.event))
            await self.store.audit(
                AuditEntry(
                    at=time.time(),
                    action="event.delivered",
                    agent_id=connection.agent_id,
                    event_id=event_id,
                    detail=f"again: not acknowledged within {self.ack_timeout:g} s",
                )
            )


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
