"""The agent channel: a WebSocket server on our own trio listener.

Per connection: the agent registers first (within ``register_timeout``), is welcomed, then three
tasks run until the connection ends: a reader (heartbeats, acknowledgements, status reports,
handed to the store's writer in order), an acknowledger (waits for those writes, then sends
``status_ack``, or one ``acks`` for all the reports a write stored) and the delivery task of
:class:`Hub`. One task watches every connection's
health: an agent silent for ``missed_heartbeats`` intervals is ``unhealthy``; silent for
``dead_heartbeats`` intervals, its connection is taken for dead (a half-open TCP connection
never ends by itself) and closed.
A malformed or unexpected message is answered with an ``error`` and logged; the connection and
the server carry on.

Secure by default: the channel is TLS, and every agent shows a client certificate from the
control plane's CA (:mod:`transporter.cp.tls`). The TLS handshake happens before the WebSocket
upgrade; the agent's id is the one its certificate names, and registering as another id is
refused and audited. A revoked certificate is refused at the upgrade (403, audited), and a
revocation the control plane learns of (:mod:`transporter.cp.revocations`) closes the
connection that uses it (audited). Only with ``--insecure-plain-ws`` is the channel plain
WebSocket, where an agent may register as any id.
"""

from __future__ import annotations

import contextlib
import logging
import math
import ssl
import time
from functools import partial

import attrs
import trio
from trio_websocket import (
    ConnectionClosed,
    WebSocketConnection,
    WebSocketRequest,
    WebSocketServer,
    wrap_server_stream,
)

from transporter.config import Address, ConfigError, parse_agent_id
from transporter.cp.connections import Gate, Limits, Throttled, peer_of
from transporter.cp.dispatch import ACK_TIMEOUT, Hub
from transporter.cp.http import open_listeners
from transporter.cp.registry import Connection
from transporter.cp.revocations import RevocationWatch
from transporter.cp.tls import HandshakeFailed, handshake, peer_certificate
from transporter.cp.writer import Pending
from transporter.protocol import codec
from transporter.protocol.identity import IdentityError, PeerCertificate, Revocation
from transporter.protocol.messages import (
    BATCHES,
    OLDEST_PROTOCOL,
    PROTOCOL_VERSION,
    AckBatch,
    Error,
    Heartbeat,
    Message,
    Received,
    Register,
    ReportBatch,
    Status,
    StatusAck,
    Welcome,
)
from transporter.protocol.model import (
    AgentRecord,
    AgentStatus,
    AuditEntry,
    EventState,
    Phase,
)
from transporter.protocol.report_bounds import bounded_time, bounded_update
from transporter.protocol.status import StatusUpdate
from transporter.store.base import StoreUnavailable

log = logging.getLogger(__name__)

PATH = "/ws"
REPORTS_IN_WRITING = 256
"""Reports of one connection handed to the writer and not yet acknowledged; past this the
connection is not read until some are written (backpressure)."""
MESSAGE_TOO_BIG = 1009
"""WebSocket close code trio-websocket sends when a message exceeds ``max_message_size``."""


HANDSHAKES = Limits(total=256, per_address=32, handshake_timeout=10.0)


HANDSHAKES = Limits(total=256, per_address=32, handshake_timeout=10.0)
"""Bounds of the agent channel's TLS handshakes (:attr:`ChannelSettings.handshakes`)."""


@attrs.frozen(kw_only=True)
class ChannelSettings:
    heartbeat_interval: float = 5.0
    """Seconds between the agent's heartbeats (told to it in ``welcome``). 5 s keeps the
    time to notice a dead connection (below) under 30 s."""
    missed_heartbeats: int = 2
    """An agent is ``unhealthy`` after this many intervals without a message."""
    dead_heartbeats: int = 4
    """After this many intervals without a message the connection is closed as dead (20 s by
    default; noticed within a quarter interval more). The agent is told, and takes the
    connection for dead after as long without an answer to its pings."""
    ack_timeout: float = ACK_TIMEOUT
    """Seconds the agent has to acknowledge a delivery before it is sent again."""
    register_timeout: float = 10.0
    connect_timeout: float = 10.0
    """Seconds for the TLS handshake, and again for the WebSocket upgrade."""
    max_message_bytes: int = codec.MAX_MESSAGE_BYTES
    handshakes: Limits = HANDSHAKES
    """TLS handshakes under way at once, in all and from one address, and how long each may
    take: an unauthenticated flood is closed before it costs TLS work or memory."""

    @property
    def dead_after(self) -> float:
        return self.heartbeat_interval * self.dead_heartbeats


class AgentChannel:
    def __init__(
        self,
        hub: Hub,
        settings: ChannelSettings,
        *,
        tls: ssl.SSLContext | None,
        revocations: RevocationWatch | None = None,
    ) -> None:
        """``tls``: the server context (client certificates required); ``None`` serves plain
        WebSocket (``--insecure-plain-ws``). ``revocations``: loaded already."""
        self.hub = hub
        self.settings = settings
        self.tls = tls
        self.revocations = revocations
        self.handshakes = Gate("agent channel", settings.handshakes)
        self._failed_handshakes = Throttled(log)
        self.churn = 0
        """Agent connections registered plus those ended, so far (:mod:`.trim` watches it)."""

    async def serve(
        self,
        address: Address,
        *,
        task_status: trio.TaskStatus[list[Address]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve until cancelled; ``started()`` gives the bound addresses."""
        listeners = await open_listeners(address, "--agent-listen")
        bound = [Address(*listener.socket.getsockname()[:2]) for listener in listeners]
        async with trio.open_nursery() as nursery:
            if self.tls is None:
                server = WebSocketServer(
                    self._handle,
                    listeners,
                    max_message_size=self.settings.max_message_bytes,
                    connect_timeout=self.settings.connect_timeout,
                    disconnect_timeout=5,
                )
                await nursery.start(server.run)
            else:
                await nursery.start(trio.serve_listeners, self._handle_tls, listeners)
            if self.revocations is not None:
                nursery.start_soon(self.revocations.run, self._revoked)
            nursery.start_soon(self.watch_health)
            task_status.started(bound)

    # --- TLS and the agent's certificate ----------------------------------------------------

    async def _handle_tls(self, stream: trio.SocketStream) -> None:
        """One TCP connection: the TLS handshake (a client certificate from our CA), then the
        WebSocket upgrade, refused for a certificate that names no agent or is revoked.

        Handshakes under way are bounded (:attr:`ChannelSettings.handshakes`), in all and per
        address: past them a connection is closed before any TLS work."""
        assert self.tls is not None
        address = peer_of(stream)
        if not self.handshakes.enter(address):
            await trio.aclose_forcefully(stream)
            return
        try:
            tls = await self._handshake(stream)
        finally:
            self.handshakes.leave(address)
            self.churn += 1  # a flood of handshakes leaves memory to give back too
        if tls is not None:
            await self._upgrade(tls, _address(stream))

    async def _handshake(
        self, stream: trio.SocketStream
    ) -> trio.SSLStream[trio.SocketStream] | None:
        assert self.tls is not None
        timeout = self.handshakes.limits.handshake_timeout
        try:
            with trio.fail_after(timeout):
                return await handshake(stream, self.tls)
        except (HandshakeFailed, trio.TooSlowError) as exc:
            reason = str(exc) or f"no TLS handshake within {timeout:g} s"
            self._failed_handshakes.warning(
                "agent channel %s: TLS handshake failed: %s", _address(stream), reason
            )
            await trio.aclose_forcefully(stream)
            return None

    async def _upgrade(self, tls: trio.SSLStream[trio.SocketStream], peer: str) -> None:
        refusal = ""
        certificate: PeerCertificate | None = None
        try:
            certificate = peer_certificate(tls)
        except (IdentityError, ValueError) as exc:
            refusal = f"the client certificate names no agent: {exc}"
        else:
            revoked = self._revocation_of(certificate)
            if revoked is not None:
                refusal = f"certificate {revoked.kind} {revoked.value} is revoked"
                await self._audit_refusal(certificate, f"{refusal} (from {peer})")
        try:
            async with trio.open_nursery() as nursery:
                request: WebSocketRequest | None = None
                with trio.move_on_after(self.settings.connect_timeout):
                    request = await wrap_server_stream(
                        nursery, tls, max_message_size=self.settings.max_message_bytes
                    )
                if request is not None and refusal:
                    log.warning("agent channel %s: refused: %s", peer, refusal)
                    await request.reject(403, body=f"{refusal}\n".encode())
                elif request is not None:
                    await self._handle(request, certificate)
                nursery.cancel_scope.cancel()  # the connection's reader, when left over
        except* (ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError):
            log.debug("agent channel %s: connection lost during the upgrade", peer)
        except* Exception:
            # A bug of ours must end this connection only, never the server.
            log.exception("agent channel %s: connection handler failed", peer)
        finally:
            await trio.aclose_forcefully(tls)

    def _revocation_of(self, certificate: PeerCertificate) -> Revocation | None:
        if self.revocations is None:
            return None
        return self.revocations.revoked.covers(certificate)

    async def _audit_refusal(self, certificate: PeerCertificate, detail: str) -> None:
        await self._audit_safely(
            AuditEntry(
                at=time.time(),
                action="agent.refused",
                agent_id=certificate.agent_id,
                detail=detail,
            )
        )

    async def _audit_safely(self, entry: AuditEntry) -> None:
        """An audit entry outside any connection's handler: a store outage is logged, it must
        not end the agent channel (a revoked agent dials again and again, with backoff)."""
        try:
            await self.hub.store.audit(entry)
        except StoreUnavailable as exc:
            log.warning("audit entry %s for %s not written: %s", entry.action, entry.agent_id, exc)

    async def _revoked(self, revocations: list[Revocation]) -> None:
        """Close the connections whose certificates were just revoked (first all of them, at
        once; then the audit entries)."""
        closed = []
        for connection in self.hub.registry.all():
            certificate = connection.certificate
            if certificate is None:
                continue
            for revocation in revocations:
                if certificate.revoked_by(revocation):
                    connection.cancel_scope.cancel()
                    closed.append((connection, revocation))
                    break
        for connection, revocation in closed:
            gone = (ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError)
            with trio.move_on_after(1), contextlib.suppress(*gone):  # tell the agent why
                await connection.send(
                    Error(
                        code="revoked",
                        message=f"this agent's certificate ({revocation.kind}"
                        f" {revocation.value}) is revoked; the connection is closed",
                    )
                )
            log.warning(
                "agent %s: certificate %s %s revoked; connection closed",
                connection.agent_id,
                revocation.kind,
                revocation.value,
            )
            await self._audit_safely(
                AuditEntry(
                    at=time.time(),
                    action="agent.revoked",
                    agent_id=connection.agent_id,
                    detail=f"certificate {revocation.kind} {revocation.value} revoked;"
                    " connection closed",
                )
            )

    # --- one connection ---------------------------------------------------------------------

    async def _handle(
        self, request: WebSocketRequest, certificate: PeerCertificate | None = None
    ) -> None:
        if request.path.split("?")[0] != PATH:
            await request.reject(404, body=f"the agent channel is at {PATH}\n".encode())
            return
        ws = await request.accept()
        try:
            await self._run(ws, certificate)
        except* ConnectionClosed as closed:
            # The agent went away: the usual end of a connection. Unless we closed it because
            # a message was over max_message_bytes (trio-websocket closes with 1009 then).
            for exc in closed.exceptions:
                reason = getattr(exc, "reason", None)
                if getattr(reason, "code", None) == MESSAGE_TOO_BIG:
                    log.warning(
                        "agent channel %s: message over %d bytes refused, connection closed (1009)",
                        _peer(ws),
                        self.settings.max_message_bytes,
                    )
                    break
        except* StoreUnavailable as outage:
            # Not a bug: the agent dials again, and is served once the store is back.
            log.warning(
                "agent channel %s: connection closed, the store is unavailable: %s",
                _peer(ws),
                outage.exceptions[0],
            )
        except* Exception:
            # A bug of ours must end this connection only, never the server.
            log.exception("agent channel %s: connection handler failed", _peer(ws))
        finally:
            # Closing waits for the agent's answer, which this connection's reader takes in;
            # when the server stops (we are cancelled) that reader is cancelled too and no answer
            # can come: the close frame is sent, and the socket closed soon after.
            stopping = trio.current_effective_deadline() == -math.inf
            with trio.CancelScope(shield=True), trio.move_on_after(0.2 if stopping else 5):
                await ws.aclose()

    async def _refuse(self, ws: WebSocketConnection, code: str, message: str) -> None:
        log.warning("agent channel %s: %s: %s", _peer(ws), code, message)
        await ws.send_message(codec.encode(Error(code=code, message=message)))

    async def _receive(self, ws: WebSocketConnection) -> Message | None:
        """The next message, or ``None`` when it was refused (and the agent told why)."""
        text = await ws.get_message()
        try:
            return codec.decode(text, max_bytes=self.settings.max_message_bytes)
        except codec.ProtocolError as exc:
            await self._refuse(ws, exc.code, exc.message)
            return None

    async def _register(
        self, ws: WebSocketConnection, certificate: PeerCertificate | None
    ) -> Register | None:
        with trio.move_on_after(self.settings.register_timeout):
            while True:
                message = await self._receive(ws)
                if message is None:
                    continue
                if not isinstance(message, Register):
                    await self._refuse(ws, "not_registered", "register before anything else")
                    continue
                try:
                    parse_agent_id(message.agent.id)
                except ConfigError as exc:
                    await self._refuse(ws, "invalid", str(exc))
                    return None
                if message.protocol < OLDEST_PROTOCOL:
                    await self._refuse(
                        ws,
                        "protocol",
                        f"protocol {message.protocol} not supported (this control plane speaks"
                        f" {OLDEST_PROTOCOL} to {PROTOCOL_VERSION})",
                    )
                    return None
                if certificate is not None and message.agent.id != certificate.agent_id:
                    refusal = (
                        f"this connection's certificate is for agent {certificate.agent_id!r};"
                        f" it may not register as {message.agent.id!r}"
                    )
                    await self._refuse(ws, "identity", refusal)
                    await self._audit_refusal(
                        certificate, f"{refusal} ({certificate.describe()}, from {_peer(ws)})"
                    )
                    return None
                return message
        await self._refuse(ws, "timeout", "no registration in time")
        return None

    async def _run(self, ws: WebSocketConnection, certificate: PeerCertificate | None) -> None:
        register = await self._register(ws, certificate)
        if register is None:
            return
        info = register.agent
        protocol = min(register.protocol, PROTOCOL_VERSION)  # what both speak
        now = time.time()

        async def send(text: str) -> None:
            await ws.send_message(text)

        if certificate is not None and self._revocation_of(certificate) is not None:
            # Revoked while it registered: checked again here, with no pause before attach,
            # so that a revocation's sweep of the registry cannot miss this connection.
            await self._refuse(ws, "revoked", "this agent's certificate is revoked")
            return
        with trio.CancelScope() as scope:
            connection = Connection(
                info=info,
                connected_since=now,
                sender=send,
                cancel_scope=scope,
                last_heartbeat=now,
                certificate=certificate,
                protocol=protocol,
            )
            replaced = self.hub.registry.attach(connection)
            self.churn += 1
            try:  # from here on, whatever fails (the store, the socket) detaches it again
                self.hub.agent_registered(info.id)
                store = self.hub.store
                await store.put_agent(
                    AgentRecord(info, AgentStatus.CONNECTED, now, now, updated_at=now)
                )
                action = "agent.replaced" if replaced else "agent.connected"
                detail = f"from {_peer(ws)}"
                if certificate is not None:
                    detail += f", certificate serial {certificate.serial}"
                await store.audit(
                    AuditEntry(at=now, action=action, agent_id=info.id, detail=detail)
                )
                log.info(
                    "agent %s connected from %s%s",
                    info.id,
                    _peer(ws),
                    " (replacing its previous connection)" if replaced else "",
                )
                welcome = Welcome(
                    agent_id=info.id,
                    heartbeat_interval=self.settings.heartbeat_interval,
                    dead_after=self.settings.dead_after,
                    protocol=protocol,
                )
                await ws.send_message(codec.encode(welcome))
                # Few tasks a connection (memory per connection matters with thousands of
                # agents): this one reads, a child delivers from the outbox, another waits for
                # reports to be written to acknowledge them. Health is watched for all
                # connections by one task (watch_health).
                stored, to_acknowledge = trio.open_memory_channel[tuple[Pending, StatusAck | None]](
                    REPORTS_IN_WRITING
                )
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(
                        partial(self.hub.deliver, connection, ack_timeout=self.settings.ack_timeout)
                    )
                    nursery.start_soon(self._acknowledge, connection, to_acknowledge)
                    await self._read(ws, connection, stored)
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(10):
                    await self._disconnected(connection, ws)

    async def _disconnected(self, connection: Connection, ws: WebSocketConnection) -> None:
        self.churn += 1
        if not self.hub.registry.detach(connection):
            return  # replaced by a newer connection, which owns the record now
        now = time.time()
        info = connection.info
        await self.hub.store.put_agent(
            AgentRecord(
                info,
                AgentStatus.DISCONNECTED,
                connection.connected_since,
                connection.last_heartbeat,
                updated_at=now,
            )
        )
        await self.hub.store.audit(
            AuditEntry(at=now, action="agent.disconnected", agent_id=info.id)
        )
        # Sent but not finished: back to queued (in_progress ones stay as they are).
        went_away = StatusUpdate(at=now, state=EventState.QUEUED, message="agent went away")
        pending = [
            await self.hub.enqueue(event_id, info.id, went_away)
            for event_id in list(connection.in_flight)
        ]
        for one in pending:
            await self.hub.updated(one, info.id)
        log.info("agent %s disconnected", info.id)

    async def _read(
        self,
        ws: WebSocketConnection,
        connection: Connection,
        stored: trio.MemorySendChannel[tuple[Pending, StatusAck | None]],
    ) -> None:
        """Read the agent's messages in order. Reports are handed to the store's writer in
        that order without waiting for each write; :meth:`_acknowledge` waits for them."""
        while True:
            message = await self._receive(ws)
            # Any message shows the agent is alive, not only heartbeats.
            connection.last_heartbeat = time.time()
            if connection.status is not AgentStatus.CONNECTED:
                connection.status = AgentStatus.CONNECTED
                await self._save_status(connection)
            if message is None or isinstance(message, Heartbeat):
                continue
            if isinstance(message, Received):
                await self._received(connection, message.event_id, stored)
            elif isinstance(message, Status):
                await self._status(connection, message, stored)
            elif isinstance(message, ReportBatch):
                for receipt in message.received:
                    await self._received(connection, receipt.event_id, stored, receipt.at)
                for status in message.statuses:
                    await self._status(connection, status, stored)
            elif isinstance(message, Register):
                await self._refuse(
                    ws, "already_registered", f"this connection is agent {connection.agent_id!r}"
                )
            else:
                await self._refuse(
                    ws, "unexpected", f"{message.TAG!r} is not for the agent to send"
                )

    async def _received(
        self,
        connection: Connection,
        event_id: str,
        stored: trio.MemorySendChannel[tuple[Pending, StatusAck | None]],
        at: float | None = None,
    ) -> None:
        """The agent has the event: recorded as its ``received`` phase, at the time the agent
        says (protocol 2; as its other reports), else now."""
        connection.acknowledged(event_id)
        now = time.time()
        received = StatusUpdate(
            at=now if at is None else bounded_time(at, now),
            state=EventState.IN_PROGRESS,
            phase=Phase.RECEIVED,
            message="received by agent",
        )
        pending = await self._report(connection, event_id, received)
        if pending is not None:
            await stored.send((pending, None))

    async def _status(
        self,
        connection: Connection,
        status: Status,
        stored: trio.MemorySendChannel[tuple[Pending, StatusAck | None]],
    ) -> None:
        update = StatusUpdate(
            at=status.at,
            state=status.state,
            phase=status.phase,
            message=status.message,
            resources=status.resources,
        )
        # The agent's word: stored within bounds (its time, its texts, how many results).
        update = bounded_update(update, time.time())
        pending = await self._report(connection, status.event_id, update)
        if pending is not None and status.replay:
            await self._replayed(connection, status.event_id, update.message)
        if pending is not None:
            connection.acknowledged(status.event_id)
            await stored.send((pending, StatusAck(status.event_id, status.seq)))

    async def _replayed(self, connection: Connection, event_id: str, message: str) -> None:
        """The agent was sent an event it had run before, and did not run it again: only a
        writer of the store (or a crash of the agent between its journal and its report) sends
        one again. Said in the log and the audit log."""
        log.warning(
            "agent %s refused to run event %s again (a replay): %s",
            connection.agent_id,
            event_id,
            message,
        )
        await self._audit_safely(
            AuditEntry(
                at=time.time(),
                action="event.replay_refused",
                agent_id=connection.agent_id,
                event_id=event_id,
                detail=message,
            )
        )

    async def _acknowledge(
        self,
        connection: Connection,
        stored: trio.MemoryReceiveChannel[tuple[Pending, StatusAck | None]],
    ) -> None:
        """Once each report is written (in the order read), tell the agent it may forget it:
        the reports already read when one is written (the writer commits them together, as a
        rule) are acknowledged in one ``acks`` message when the agent speaks protocol 2."""
        async for pending, ack in stored:
            acks: list[StatusAck] = []
            while True:
                await self.hub.updated(pending, connection.agent_id)
                # Stored, or refused as stale (the event is final): the agent may forget it.
                if ack is not None:
                    acks.append(ack)
                try:  # the reports read meanwhile, most of them stored by the same commit
                    pending, ack = stored.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            if len(acks) > 1 and connection.protocol >= BATCHES:
                await connection.send(AckBatch(tuple(acks)))
            else:
                for ack in acks:
                    await connection.send(ack)

    async def _report(
        self, connection: Connection, event_id: str, update: StatusUpdate
    ) -> Pending | None:
        """Hand a report about ``event_id`` to the writer; refused (``None``) unless the event
        is this agent's."""
        if event_id not in connection.in_flight and not await self._owns(connection, event_id):
            log.warning(
                "agent %s reported on event %r, which is not its own", connection.agent_id, event_id
            )
            await connection.send(
                Error(code="not_yours", message=f"event {event_id!r} is not for this agent")
            )
            return None
        return await self.hub.enqueue(event_id, connection.agent_id, update)

    async def _owns(self, connection: Connection, event_id: str) -> bool:
        """The slow way, for a report from before a reconnect or a restart: ask the store."""
        record = await self.hub.store.get_event(event_id)
        return record is not None and record.event.target_agent == connection.agent_id

    async def watch_health(self) -> None:
        """Mark agents ``unhealthy`` after ``missed_heartbeats`` intervals of silence, and close
        their connections after ``dead_heartbeats`` intervals, or once their certificates
        expire (checked at the handshake, but a connection may outlive it)."""
        unhealthy = self.settings.heartbeat_interval * self.settings.missed_heartbeats
        dead = self.settings.dead_after
        while True:
            now = time.time()
            for connection in self.hub.registry.all():
                silent = now - connection.last_heartbeat
                certificate = connection.certificate
                if connection.cancel_scope.cancel_called:
                    continue
                if certificate is not None and certificate.not_after <= now:
                    log.warning(
                        "agent %s: its certificate expired; closing its connection",
                        connection.agent_id,
                    )
                    connection.cancel_scope.cancel()
                    await self._audit_safely(
                        AuditEntry(
                            at=now,
                            action="agent.expired",
                            agent_id=connection.agent_id,
                            detail=f"certificate serial {certificate.serial} expired;"
                            " connection closed",
                        )
                    )
                elif silent >= dead:
                    log.warning(
                        "agent %s: nothing heard for %.1f s; closing its connection as dead",
                        connection.agent_id,
                        silent,
                    )
                    connection.cancel_scope.cancel()
                elif silent >= unhealthy and connection.status is AgentStatus.CONNECTED:
                    connection.status = AgentStatus.UNHEALTHY
                    log.warning("agent %s: nothing heard for %.1f s", connection.agent_id, silent)
                    try:
                        await self._save_status(connection)
                    except StoreUnavailable as exc:  # shown again when it speaks or goes
                        log.warning("agent %s: status not saved: %s", connection.agent_id, exc)
            await trio.sleep(self.settings.heartbeat_interval / 4)

    async def _save_status(self, connection: Connection) -> None:
        now = time.time()
        await self.hub.store.put_agent(
            AgentRecord(
                connection.info,
                connection.status,
                connection.connected_since,
                connection.last_heartbeat,
                updated_at=now,
            )
        )


def _peer(ws: WebSocketConnection) -> str:
    remote = ws.remote
    return str(remote) if isinstance(remote, str) else f"{remote.address}:{remote.port}"


def _address(stream: trio.SocketStream) -> str:
    try:
        host, port = stream.socket.getpeername()[:2]
    except OSError:
        return "(gone)"
    return f"{host}:{port}"
