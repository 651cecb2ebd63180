"""The agents' records as their connections come and go: stored (with the audit log's entry)
when an agent connects, replaces its connection, changes status or leaves; what was sent to an
agent that left and did not finish goes back to its outbox."""

from __future__ import annotations

import itertools
import logging
import time

import attrs
import trio

from transporter.cp.connections import Throttled
from transporter.cp.live import Connection
from transporter.cp.progress import Progress
from transporter.logs import about
from transporter.protocol.model import AgentRecord, AgentStatus, AuditEntry, EventState
from transporter.protocol.status import StatusUpdate
from transporter.store.base import Store, StoreUnavailable

log = logging.getLogger(__name__)


MAX_ARRIVALS = 500
"""Registrations written together at most (one transaction, or one script on Redis)."""


@attrs.define(eq=False)
class _Arrival:
    record: AgentRecord
    audit: AuditEntry | None
    wake: trio.Event = attrs.field(factory=trio.Event)
    """Set once: when written (``done``), or when it is this arrival's turn to write."""
    done: bool = False
    error: Exception | None = None


class Arrivals:
    """A group commit of registrations (and of departures): the agents that arrive while one
    write is under way are stored together by the next (:meth:`Store.put_agents`, one
    commit), each welcomed once its own record is durable. A reconnect storm of thousands of
    agents then costs a few writes, not one each (one at a time, they queue behind each other
    past the store's timeout); so does a mass departure (the control plane's network cut).

    No task of its own: the first arrival waiting writes what has gathered (shielded, bounded
    by the store's own timeout, so that a connection that ends meanwhile does not take the
    others' write with it), then hands the next write to the first one still waiting. Each
    waits on its own event, woken once: 10,000 agents waiting through 20 writes are 10,000
    wake-ups, not 200,000 (they all waited on one event before, and looked again after each
    write: a fifth of the control plane's CPU in a reconnect storm).
    """

    def __init__(self, store: Store, *, max_batch: int = MAX_ARRIVALS) -> None:
        self.store = store
        self.max_batch = max_batch
        self.writes = 0
        """Writes so far (tests and the bench look)."""
        self._waiting: dict[_Arrival, None] = {}
        """In order of arrival (a dict: one that gives up leaves it at once)."""
        self._writing = False
        """A write is under way, or its turn given to the first waiting."""
        self.unsaved = Throttled(log)
        """Statuses not saved in an outage: said within a budget (thousands at once)."""

    async def store_arrival(self, record: AgentRecord, audit: AuditEntry | None = None) -> None:
        """Store ``record`` and ``audit`` with the others arriving now; raises what the store
        raised (:class:`StoreUnavailable`)."""
        await trio.lowlevel.checkpoint_if_cancelled()  # one that gave up is not written
        arrival = _Arrival(record, audit)
        self._waiting[arrival] = None
        if not self._writing:
            self._hand_over()
        try:
            await arrival.wake.wait()
            if not arrival.done:  # its turn: it is the first waiting, so in this write
                await self._write()
        except BaseException:
            if arrival in self._waiting:  # not written: never will be
                del self._waiting[arrival]
                if arrival.wake.is_set():  # the turn was given to it: the next one's now
                    self._hand_over()
            elif not arrival.done:  # being written: the record is not left behind
                with trio.CancelScope(shield=True):
                    await arrival.wake.wait()
            raise
        if arrival.error is not None:
            raise arrival.error

    def _hand_over(self) -> None:
        """The next write is the first waiting arrival's (none waiting: none under way)."""
        first = next(iter(self._waiting), None)
        self._writing = first is not None
        if first is not None:
            first.wake.set()

    async def _write(self) -> None:
        batch = list(itertools.islice(self._waiting, self.max_batch))
        for arrival in batch:
            del self._waiting[arrival]
        try:
            with trio.CancelScope(shield=True):
                await self.store.put_agents(
                    [a.record for a in batch], [a.audit for a in batch if a.audit is not None]
                )
        except Exception as exc:
            for arrival in batch:
                arrival.error = exc
        finally:
            self.writes += 1
            for arrival in batch:
                arrival.done = True
                arrival.wake.set()
            self._hand_over()


async def arrived(arrivals: Arrivals, connection: Connection, *, peer: str, replaced: bool) -> None:
    """``connection`` is attached (``replaced``: instead of the agent's previous one); its
    record and audit entry are stored (with others arriving now) when this returns."""
    info, now = connection.info, connection.connected_since
    detail = f"from {peer}"
    if connection.certificate is not None:
        detail += f", certificate serial {connection.certificate.serial}"
    action = "agent.replaced" if replaced else "agent.connected"
    await arrivals.store_arrival(
        AgentRecord(info, AgentStatus.CONNECTED, now, now, updated_at=now),
        AuditEntry(at=now, action=action, agent_id=info.id, detail=detail),
    )
    log.info(
        "agent %s connected from %s%s",
        info.id,
        peer,
        " (replacing its previous connection)" if replaced else "",
        extra=about(agent_id=info.id),
    )


async def left(arrivals: Arrivals, progress: Progress, connection: Connection) -> None:
    """``connection`` ended, and no newer one of the agent replaced it: its record and audit
    entry are stored with the others coming and going now."""
    now = time.time()
    info = connection.info
    record = AgentRecord(
        info,
        AgentStatus.DISCONNECTED,
        connection.connected_since,
        connection.last_heard,
        updated_at=now,
    )
    await arrivals.store_arrival(
        record, AuditEntry(at=now, action="agent.disconnected", agent_id=info.id)
    )
    # Sent but not finished: back to queued (in_progress ones stay as they are).
    went_away = StatusUpdate(at=now, state=EventState.QUEUED, message="agent went away")
    pending = [
        await progress.enqueue(event_id, info.id, went_away) for event_id in connection.window
    ]
    for one in pending:
        await progress.updated(one, info.id)
    log.info("agent %s disconnected", info.id, extra=about(agent_id=info.id))


async def heard_again(arrivals: Arrivals, connection: Connection) -> None:
    """An agent taken for unhealthy spoke again: saved ``connected`` as :func:`save_status`
    does, but a store that does not answer is only logged. The record is a view (corrected at
    its next change); closing the connection for it would bring the agent back with a
    registration to write, more load on a store already slow."""
    connection.status = AgentStatus.CONNECTED
    try:
        await save_status(arrivals, connection)
    except StoreUnavailable as exc:
        arrivals.unsaved.warning("agent %s: status not saved: %s", connection.agent_id, exc)


async def save_status(
    arrivals: Arrivals, connection: Connection, status: AgentStatus | None = None
) -> None:
    """Store the agent's record as this connection sees it (``status``: its new status), with
    the others written now (a slow spell can turn thousands unhealthy, and back, at once)."""
    await arrivals.store_arrival(
        AgentRecord(
            connection.info,
            status or connection.status,
            connection.connected_since,
            connection.last_heard,
            updated_at=time.time(),
        )
    )
