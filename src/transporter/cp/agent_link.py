"""One agent's WebSocket connection, carried out: the socket, the store and the audit log
around the rules of :mod:`.conversation`.

Per connection: the agent registers first (within ``register_timeout``) and is welcomed; then
one task reads until the connection ends (reports handed to the group commit in order,
without waiting for each write; a ping, the agent's heartbeat, notes the time). Others run
only while there is work: an acknowledger while reports are being written (it waits for those
writes, then acknowledges them as :meth:`AgentConversation.acks` says) and a delivery task
while the agent has events to receive or in flight (:mod:`.delivery`). An idle connection is
one task: 10,000 agents at rest are 10,000 tasks, not 40,000. Health is watched for all
connections by one task (:mod:`.health`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Protocol

import attrs
import trio

from transporter.cp import roster
from transporter.cp.conversation import AgentConversation, Refuse, Report
from transporter.cp.delivery import Delivery
from transporter.cp.framing import MESSAGE_TOO_BIG, Closed, Socket, Upgrade
from transporter.cp.group_commit import Pending
from transporter.cp.intake import Intake
from transporter.cp.live import Connection, LiveAgents
from transporter.cp.progress import Progress
from transporter.cp.sessions import Sessions
from transporter.logs import about
from transporter.protocol import codec
from transporter.protocol.identity import PeerCertificate
from transporter.protocol.messages import Error, Register, StatusAck, Welcome
from transporter.protocol.model import AgentStatus, AuditEntry
from transporter.store.base import Store, StoreUnavailable

log = logging.getLogger(__name__)

PATH = "/ws"
REPORTS_IN_WRITING = 256
"""Reports of one connection handed to the writer and not yet acknowledged; past this the
connection is not read until some are written (backpressure)."""

Stored = tuple[Pending, StatusAck | None]


@attrs.frozen(kw_only=True)
class LinkSettings:
    heartbeat_interval: float
    """The least (:class:`~.channel.ChannelSettings`)."""
    heartbeat_budget: float
    dead_heartbeats: int
    register_timeout: float
    max_message_bytes: int

    def interval_for(self, fleet: int) -> float:
        """The heartbeat interval of an agent of a fleet of ``fleet``: the fleet's heartbeats
        within the budget, never below the least."""
        return max(self.heartbeat_interval, fleet / self.heartbeat_budget)


@attrs.frozen
class Parts:
    """What a connection works with: the control plane's parts, each for its own job."""

    store: Store
    live: LiveAgents
    intake: Intake
    progress: Progress
    delivery: Delivery
    sessions: Sessions
    arrivals: roster.Arrivals = attrs.field(
        default=attrs.Factory(lambda parts: roster.Arrivals(parts.store), takes_self=True)
    )
    """Registrations stored together (a reconnect storm's thousands in a few writes)."""


class Guard(Protocol):
    """What the channel around a connection knows: revocations, and how to audit safely."""

    async def audit_safely(self, entry: AuditEntry) -> None:
        """Write an audit entry outside a connection's own failures (an outage is logged)."""

    def is_revoked(self, certificate: PeerCertificate) -> bool:
        """Whether a certificate is revoked (as far as this control plane knows now)."""


class AgentLink:
    """One WebSocket connection of an agent, from the upgrade to its end."""

    def __init__(
        self,
        parts: Parts,
        settings: LinkSettings,
        certificate: PeerCertificate | None,
        guard: Guard,
    ) -> None:
        self.parts = parts
        self.guard = guard
        self.settings = settings
        self.certificate = certificate
        self.conversation = AgentConversation(certificate, max_bytes=settings.max_message_bytes)
        self.peer = "(unknown)"
        """The agent's address, taken once at the upgrade: the socket may be gone when a
        failure is logged (and asking it then is an error of its own)."""
        self._acks: Acknowledger | None = None
        """Made at the connection's first report."""

    async def serve(self, upgrade: Upgrade, on_change: Callable[[], None], peer: str) -> None:
        """Serve the agent behind ``upgrade`` (its request read) from ``peer`` (its address);
        ``on_change`` is called when a connection is attached and when it is detached. Raises
        nothing but a cancellation: whatever ends the connection is logged here."""
        self.peer = peer
        ws: Socket | None = None
        try:
            if upgrade.path.split("?")[0] == PATH:
                ws = await upgrade.accept()
            else:
                await upgrade.reject(404, f"the agent channel is at {PATH}\n")
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            log.debug("agent channel %s: connection lost during the upgrade", peer)
        if ws is None:
            return
        try:
            await self._run(ws, on_change)
        except* Closed as closed:
            # The agent went away: the usual end of a connection. Unless we closed it because
            # a message was over max_message_bytes (with 1009).
            if closed.subgroup(_too_big) is not None:
                log.warning(
                    "agent channel %s: message over %d bytes refused, connection closed (1009)",
                    self.peer,
                    self.settings.max_message_bytes,
                )
        except* StoreUnavailable as outage:
            # Not a bug: the agent dials again, and is served once the store is back.
            log.warning(
                "agent channel %s: connection closed, the store is unavailable: %s",
                self.peer,
                outage.exceptions[0],
            )
        except* Exception:
            # A bug of ours must end this connection only, never the server.
            log.exception("agent channel %s: connection handler failed", self.peer)
        finally:
            # Closing waits for the agent's answer; when the server stops (we are cancelled)
            # the close frame is sent, and the socket closed soon after.
            stopping = trio.current_effective_deadline() == -math.inf
            with trio.CancelScope(shield=True), trio.move_on_after(0.2 if stopping else 5):
                await ws.close()

    async def _refuse(self, ws: Socket, refusal: Refuse) -> None:
        log.warning("agent channel %s: %s: %s", self.peer, refusal.code, refusal.message)
        await ws.send_message(codec.encode(Error(code=refusal.code, message=refusal.message)))
        if refusal.audit and self.certificate is not None:
            detail = f"{refusal.message} ({self.certificate.describe()}, from {self.peer})"
            await self.guard.audit_safely(
                AuditEntry(
                    at=time.time(),
                    action="agent.refused",
                    agent_id=self.certificate.agent_id,
                    detail=detail,
                )
            )

    async def _register(self, ws: Socket) -> Register | None:
        with trio.move_on_after(self.settings.register_timeout):
            while True:
                received = await ws.receive()
                if received is None:
                    continue
                message = self.conversation.decode(received)
                outcome = (
                    message if isinstance(message, Refuse) else self.conversation.register(message)
                )
                if isinstance(outcome, Register):
                    return outcome
                await self._refuse(ws, outcome)
                if outcome.close:
                    return None
        await self._refuse(ws, Refuse("timeout", "no registration in time"))
        return None

    async def _run(self, ws: Socket, on_change: Callable[[], None]) -> None:
        register = await self._register(ws)
        if register is None:
            return
        if self.certificate is not None and self.guard.is_revoked(self.certificate):
            # Revoked while it registered: checked again here, with no pause before attach,
            # so that a revocation's sweep of the live agents cannot miss this connection.
            await self._refuse(ws, Refuse("revoked", "this agent's certificate is revoked"))
            return
        now = time.time()
        connection: Connection | None = None
        try:
            # The nursery's scope is the connection's (cancelled to close it): one scope less
            # for each of 10,000 connections.
            async with trio.open_nursery() as nursery:
                connection = Connection(
                    info=register.agent,
                    connected_since=now,
                    sender=ws.send_message,
                    cancel_scope=nursery.cancel_scope,
                    last_heard=now,
                    certificate=self.certificate,
                    protocol=self.conversation.protocol,
                )
                replaced = self.parts.live.attach(connection)
                on_change()
                # From here on, whatever fails (the store, the socket) detaches it again.
                await self._welcome(ws, connection, replaced is not None)
                self.parts.delivery.serve(connection, nursery)
                try:
                    await self._read(ws, connection, nursery)
                finally:
                    self.parts.delivery.stop(connection)
        finally:
            if connection is not None:
                on_change()
                with trio.CancelScope(shield=True), trio.move_on_after(10):
                    await self._disconnected(connection)

    async def _welcome(self, ws: Socket, connection: Connection, replaced: bool) -> None:
        self.parts.intake.agent_registered(connection.info)
        await self.parts.sessions.claim(connection)  # other replicas close theirs
        await roster.arrived(self.parts.arrivals, connection, peer=self.peer, replaced=replaced)
        interval = self.settings.interval_for(self.parts.live.fleet)
        connection.heartbeat_interval = interval
        welcome = Welcome(
            agent_id=connection.agent_id,
            heartbeat_interval=interval,
            dead_after=interval * self.settings.dead_heartbeats,
            protocol=connection.protocol,
        )
        await ws.send_message(codec.encode(welcome))

    async def _disconnected(self, connection: Connection) -> None:
        if not self.parts.live.detach(connection):
            return  # a newer connection here owns the record now
        if not await self.parts.sessions.moved_on(connection):  # else one on another replica
            await roster.left(self.parts.arrivals, self.parts.progress, connection)

    async def _read(self, ws: Socket, connection: Connection, nursery: trio.Nursery) -> None:
        """Read the agent's messages in order. Reports are handed to the store's writer in
        that order without waiting for each write; an :class:`Acknowledger` (a task of
        ``nursery`` while there are some) waits for them."""
        while True:
            received = await ws.receive()
            # Any message shows the agent is alive, not only heartbeats (pings, protocol 4).
            now = time.time()
            connection.last_heard = now
            if connection.status is not AgentStatus.CONNECTED:
                await roster.heard_again(self.parts.arrivals, connection)
            if received is None:
                continue
            message = self.conversation.decode(received)
            if isinstance(message, Refuse):
                await self._refuse(ws, message)
                continue
            for outcome in self.conversation.take(message, now, connection.window):
                if isinstance(outcome, Refuse):
                    await self._refuse(ws, outcome)
                else:
                    await self._report(connection, outcome, nursery)

    async def _report(self, connection: Connection, report: Report, nursery: trio.Nursery) -> None:
        """Hand a report to the writer, unless the event is not the agent's."""
        event_id = report.event_id
        if not report.sent_here and not await self._owns(connection, event_id):
            log.warning(
                "agent %s reported on event %r, which is not its own",
                connection.agent_id,
                event_id,
                extra=about(agent_id=connection.agent_id, event_id=event_id),
            )
            await connection.send(
                Error(code="not_yours", message=f"event {event_id!r} is not for this agent")
            )
            return
        pending = await self.parts.progress.enqueue(event_id, connection.agent_id, report.update)
        if self._acks is None:
            self._acks = Acknowledger(self.parts.progress, self.conversation, connection)
        await self._acks.add((pending, report.ack), nursery)
        if report.replay:
            await self._replayed(connection, event_id, report.update.message)

    async def _owns(self, connection: Connection, event_id: str) -> bool:
        """The slow way, for a report from before a reconnect or a restart: ask the store."""
        record = await self.parts.store.get_event(event_id)
        return record is not None and record.event.target_agent == connection.agent_id

    async def _replayed(self, connection: Connection, event_id: str, message: str) -> None:
        """The agent was sent an event it had run before, and did not run it again: only a
        writer of the store (or a crash of the agent between its journal and its report) sends
        one again. Said in the log and the audit log."""
        log.warning(
            "agent %s refused to run event %s again (a replay): %s",
            connection.agent_id,
            event_id,
            message,
            extra=about(agent_id=connection.agent_id, event_id=event_id),
        )
        await self.guard.audit_safely(
            AuditEntry(
                at=time.time(),
                action="event.replay_refused",
                agent_id=connection.agent_id,
                event_id=event_id,
                detail=message,
            )
        )


class Acknowledger:
    """Acknowledges a connection's reports once each is written, in the order read: the
    reports already read when one is written (the writer commits them together, as a rule)
    are acknowledged together. Its task runs while reports wait (:meth:`add` starts it)."""

    def __init__(
        self, progress: Progress, conversation: AgentConversation, connection: Connection
    ) -> None:
        self.progress = progress
        self.conversation = conversation
        self.connection = connection
        self._writing, self._written = trio.open_memory_channel[Stored](REPORTS_IN_WRITING)
        self._running = False

    async def add(self, stored: Stored, nursery: trio.Nursery) -> None:
        """A report handed to the writer (waits while :data:`REPORTS_IN_WRITING` are)."""
        await self._writing.send(stored)
        if not self._running:
            self._running = True
            nursery.start_soon(self.run, self._written)

    async def run(self, stored: trio.MemoryReceiveChannel[Stored]) -> None:
        """Until none is left (the next :meth:`add` starts it again: no await between the last
        look and the end, so none is missed)."""
        try:
            while True:
                try:
                    pending, ack = stored.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    return
                acks: list[StatusAck] = []
                while True:
                    await self.progress.updated(pending, self.connection.agent_id)
                    # Stored, or refused as stale (the event is final): the agent may forget it.
                    if ack is not None:
                        acks.append(ack)
                    try:  # the reports read meanwhile, most of them stored by the same commit
                        pending, ack = stored.receive_nowait()
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                for message in self.conversation.acks(acks):
                    await self.connection.send(message)
        finally:
            self._running = False


def _too_big(exc: BaseException) -> bool:
    """Whether we closed the connection for a message over the limit."""
    return isinstance(exc, Closed) and exc.by_us and exc.code == MESSAGE_TOO_BIG
