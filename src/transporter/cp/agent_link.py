"""One agent's WebSocket connection, carried out: the socket, the store and the audit log
around the rules of :mod:`.conversation`.

Per connection: the agent registers first (within ``register_timeout``) and is welcomed; then
three tasks run until the connection ends: a reader (reports handed to the group commit in
order, without waiting for each write), an acknowledger (waits for those writes, then
acknowledges them as :meth:`AgentConversation.acks` says) and the delivery task
(:mod:`.delivery`). Health is watched for all connections by one task (:mod:`.health`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Protocol

import attrs
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest

from transporter.cp import roster
from transporter.cp.conversation import AgentConversation, Refuse, Report
from transporter.cp.delivery import Delivery
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
MESSAGE_TOO_BIG = 1009
"""WebSocket close code trio-websocket sends when a message exceeds ``max_message_size``."""

Stored = tuple[Pending, StatusAck | None]


@attrs.frozen(kw_only=True)
class LinkSettings:
    heartbeat_interval: float
    dead_after: float
    register_timeout: float
    max_message_bytes: int


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
        *,
        admitted: Callable[[], None] | None = None,
    ) -> None:
        """``admitted``: called once, when the agent is welcomed or the connection ends
        before (the channel's handshake turn is held until then)."""
        self.parts = parts
        self._admitted = admitted
        self.guard = guard
        self.settings = settings
        self.certificate = certificate
        self.conversation = AgentConversation(certificate, max_bytes=settings.max_message_bytes)
        self.peer = "(unknown)"
        """The agent's address, taken once at the upgrade: the socket may be gone when a
        failure is logged (and asking it then is an error of its own)."""

    async def serve(self, request: WebSocketRequest, on_change: Callable[[], None]) -> None:
        """Serve the agent behind ``request``; ``on_change`` is called when a connection is
        attached and when it is detached."""
        if request.path.split("?")[0] != PATH:
            await request.reject(404, body=f"the agent channel is at {PATH}\n".encode())
            return
        ws = await request.accept()
        self.peer = peer_of_ws(ws)
        try:
            await self._run(ws, on_change)
        except* ConnectionClosed as closed:
            # The agent went away: the usual end of a connection. Unless we closed it because
            # a message was over max_message_bytes (trio-websocket closes with 1009 then).
            for exc in closed.exceptions:
                if getattr(getattr(exc, "reason", None), "code", None) == MESSAGE_TOO_BIG:
                    log.warning(
                        "agent channel %s: message over %d bytes refused, connection closed (1009)",
                        self.peer,
                        self.settings.max_message_bytes,
                    )
                    break
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
            self._admit()
            # Closing waits for the agent's answer, which this connection's reader takes in;
            # when the server stops (we are cancelled) that reader is cancelled too and no answer
            # can come: the close frame is sent, and the socket closed soon after.
            stopping = trio.current_effective_deadline() == -math.inf
            with trio.CancelScope(shield=True), trio.move_on_after(0.2 if stopping else 5):
                await ws.aclose()

    async def _refuse(self, ws: WebSocketConnection, refusal: Refuse) -> None:
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

    async def _register(self, ws: WebSocketConnection) -> Register | None:
        with trio.move_on_after(self.settings.register_timeout):
            while True:
                message = self.conversation.decode(await ws.get_message())
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

    async def _run(self, ws: WebSocketConnection, on_change: Callable[[], None]) -> None:
        register = await self._register(ws)
        if register is None:
            return
        if self.certificate is not None and self.guard.is_revoked(self.certificate):
            # Revoked while it registered: checked again here, with no pause before attach,
            # so that a revocation's sweep of the live agents cannot miss this connection.
            await self._refuse(ws, Refuse("revoked", "this agent's certificate is revoked"))
            return
        now = time.time()

        async def send(text: str) -> None:
            await ws.send_message(text)

        with trio.CancelScope() as scope:
            connection = Connection(
                info=register.agent,
                connected_since=now,
                sender=send,
                cancel_scope=scope,
                last_heard=now,
                certificate=self.certificate,
                protocol=self.conversation.protocol,
            )
            replaced = self.parts.live.attach(connection)
            on_change()
            try:  # from here on, whatever fails (the store, the socket) detaches it again
                await self._welcome(ws, connection, replaced is not None)
                stored, to_acknowledge = trio.open_memory_channel[Stored](REPORTS_IN_WRITING)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self.parts.delivery.run, connection)
                    nursery.start_soon(self._acknowledge, connection, to_acknowledge)
                    await self._read(ws, connection, stored)
            finally:
                on_change()
                with trio.CancelScope(shield=True), trio.move_on_after(10):
                    await self._disconnected(connection)

    async def _welcome(
        self, ws: WebSocketConnection, connection: Connection, replaced: bool
    ) -> None:
        self.parts.intake.agent_registered(connection.info)
        await self.parts.sessions.claim(connection)  # other replicas close theirs
        await roster.arrived(self.parts.arrivals, connection, peer=self.peer, replaced=replaced)
        welcome = Welcome(
            agent_id=connection.agent_id,
            heartbeat_interval=self.settings.heartbeat_interval,
            dead_after=self.settings.dead_after,
            protocol=connection.protocol,
        )
        await ws.send_message(codec.encode(welcome))
        self._admit()

    def _admit(self) -> None:
        admitted, self._admitted = self._admitted, None
        if admitted is not None:
            admitted()

    async def _disconnected(self, connection: Connection) -> None:
        if not self.parts.live.detach(connection):
            return  # a newer connection here owns the record now
        if not await self.parts.sessions.moved_on(connection):  # else one on another replica
            await roster.left(self.parts.arrivals, self.parts.progress, connection)

    async def _read(
        self,
        ws: WebSocketConnection,
        connection: Connection,
        stored: trio.MemorySendChannel[Stored],
    ) -> None:
        """Read the agent's messages in order. Reports are handed to the store's writer in
        that order without waiting for each write; :meth:`_acknowledge` waits for them."""
        while True:
            message = self.conversation.decode(await ws.get_message())
            # Any message shows the agent is alive, not only heartbeats.
            now = time.time()
            connection.last_heard = now
            if connection.status is not AgentStatus.CONNECTED:
                await roster.heard_again(self.parts.arrivals, connection)
            if isinstance(message, Refuse):
                await self._refuse(ws, message)
                continue
            for outcome in self.conversation.take(message, now, connection.window):
                if isinstance(outcome, Refuse):
                    await self._refuse(ws, outcome)
                else:
                    await self._report(connection, outcome, stored)

    async def _report(
        self, connection: Connection, report: Report, stored: trio.MemorySendChannel[Stored]
    ) -> None:
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
        await stored.send((pending, report.ack))
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

    async def _acknowledge(
        self, connection: Connection, stored: trio.MemoryReceiveChannel[Stored]
    ) -> None:
        """Once each report is written (in the order read), tell the agent it may forget it:
        the reports already read when one is written (the writer commits them together, as a
        rule) are acknowledged together."""
        async for pending, ack in stored:
            acks: list[StatusAck] = []
            while True:
                await self.parts.progress.updated(pending, connection.agent_id)
                # Stored, or refused as stale (the event is final): the agent may forget it.
                if ack is not None:
                    acks.append(ack)
                try:  # the reports read meanwhile, most of them stored by the same commit
                    pending, ack = stored.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            for message in self.conversation.acks(acks):
                await connection.send(message)


def peer_of_ws(ws: WebSocketConnection) -> str:
    """``host:port`` of the agent (``(gone)`` once its socket is closed)."""
    try:
        remote = ws.remote
    except OSError:
        return "(gone)"
    return str(remote) if isinstance(remote, str) else f"{remote.address}:{remote.port}"
