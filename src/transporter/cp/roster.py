"""The agents' records as their connections come and go: stored (with the audit log's entry)
when an agent connects, replaces its connection, changes status or leaves; what was sent to an
agent that left and did not finish goes back to its outbox."""

from __future__ import annotations

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
    done: trio.Event = attrs.field(factory=trio.Event)
    error: Exception | None = None


class Arrivals:
    """A group commit of registrations (and of departures): the agents that arrive while one
    write is under way are stored together by the next (:meth:`Store.put_agents`, one
    commit), each welcomed once its own record is durable. A reconnect storm of thousands of
    agents then costs a few writes, not one each (one at a time, they queue behind each other
    past the store's timeout); so does a mass departure (the control plane's network cut).

    No task of its own: the first arrival that finds no write under way writes what has
    gathered (shielded, bounded by the store's own timeout, so that a connection that ends
    meanwhile does not take the others' write with it), then the next one waiting takes over.
    """

    def __init__(self, store: Store, *, max_batch: int = MAX_ARRIVALS) -> None:
        self.store = store
        self.max_batch = max_batch
        self.writes = 0
        """Writes so far (tests and the bench look)."""
        self._waiting: list[_Arrival] = []
        self._writing = False
        self._written = trio.Event()
        """Set (and replaced) at the end of each write: the waiting look again."""
        self.unsaved = Throttled(log)
        """Statuses not saved in an outage: said within a budget (thousands at once)."""

    async def store_arrival(self, record: AgentRecord, audit: AuditEntry | None = None) -> None:
        """Store ``record`` and ``audit`` with the others arriving now; raises what the store
        raised (:class:`StoreUnavailable`)."""
        await trio.lowlevel.checkpoint_if_cancelled()  # one that gave up is not written
        arrival = _Arrival(record, audit)
        self._waiting.append(arrival)
        try:
            while not arrival.done.is_set():
                if self._writing:
                    await self._written.wait()
                else:
                    await self._write()
        except BaseException:
            if arrival in self._waiting:  # not written: never will be
                self._waiting.remove(arrival)
            elif not arrival.done.is_set():  # being written: the record is not left behind
                with trio.CancelScope(shield=True):
                    await arrival.done.wait()
            raise
        if arrival.error is not None:
            raise arrival.error

    async def _write(self) -> None:
        batch = self._waiting[: self.max_batch]
        del self._waiting[: self.max_batch]
        self._writing = True
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
            self._writing = False
            for arrival in batch:
                arrival.done.set()
            written, self._written = self._written, trio.Event()
            written.set()


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
