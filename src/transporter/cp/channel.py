"""The agent channel: a WebSocket server on our own trio listener.

Per connection: the agent registers first (within ``register_timeout``), is welcomed, then three
tasks run until the connection ends: a reader (heartbeats, acknowledgements, status reports,
handed to the store's writer in order), an acknowledger (waits for those writes, then sends
``status_ack``) and the delivery task of :class:`Hub`. One task watches every connection's
health: an agent silent for ``missed_heartbeats`` intervals is ``unhealthy``; silent for
``dead_heartbeats`` intervals, its connection is taken for dead (a half-open TCP connection
never ends by itself) and closed.
A malformed or unexpected message is answered with an ``error`` and logged; the connection and
the server carry on.
"""

from __future__ import annotations

import logging
import time
from functools import partial

import attrs
import trio
from trio_websocket import (
    ConnectionClosed,
    WebSocketConnection,
    WebSocketRequest,
    WebSocketServer,
)

from transporter.config import Address, ConfigError, parse_agent_id
from transporter.cp.dispatch import ACK_TIMEOUT, Hub
from transporter.cp.registry import Connection
from transporter.cp.writer import Pending
from transporter.protocol import codec
from transporter.protocol.messages import (
    PROTOCOL_VERSION,
    CpMessage,
    Error,
    Heartbeat,
    Message,
    Received,
    Register,
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
from transporter.protocol.status import StatusUpdate

log = logging.getLogger(__name__)

PATH = "/ws"
REPORTS_IN_WRITING = 256
"""Reports of one connection handed to the writer and not yet acknowledged; past this the
connection is not read until some are written (backpressure)."""
MESSAGE_TOO_BIG = 1009
"""WebSocket close code trio-websocket sends when a message exceeds ``max_message_size``."""


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
    max_message_bytes: int = codec.MAX_MESSAGE_BYTES

    @property
    def dead_after(self) -> float:
        return self.heartbeat_interval * self.dead_heartbeats


class AgentChannel:
    def __init__(self, hub: Hub, settings: ChannelSettings) -> None:
        self.hub = hub
        self.settings = settings

    async def serve(
        self,
        address: Address,
        *,
        task_status: trio.TaskStatus[list[Address]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve until cancelled; ``started()`` gives the bound addresses."""
        listeners = await trio.open_tcp_listeners(address.port, host=address.host or None)
        bound = [Address(*listener.socket.getsockname()[:2]) for listener in listeners]
        server = WebSocketServer(
            self._handle,
            listeners,
            max_message_size=self.settings.max_message_bytes,
            connect_timeout=10,
            disconnect_timeout=5,
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            nursery.start_soon(self.watch_health)
            task_status.started(bound)

    # --- one connection ---------------------------------------------------------------------

    async def _handle(self, request: WebSocketRequest) -> None:
        if request.path.split("?")[0] != PATH:
            await request.reject(404, body=f"the agent channel is at {PATH}\n".encode())
            return
        ws = await request.accept()
        try:
            await self._run(ws)
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
        except* Exception:
            # A bug of ours must end this connection only, never the server.
            log.exception("agent channel %s: connection handler failed", _peer(ws))
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
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

    async def _register(self, ws: WebSocketConnection) -> Register | None:
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
                if message.protocol != PROTOCOL_VERSION:
                    await self._refuse(
                        ws,
                        "protocol",
                        f"protocol {message.protocol} not supported (this is {PROTOCOL_VERSION})",
                    )
                    return None
                return message
        await self._refuse(ws, "timeout", "no registration in time")
        return None

    async def _run(self, ws: WebSocketConnection) -> None:
        register = await self._register(ws)
        if register is None:
            return
        info = register.agent
        now = time.time()

        async def send(message: CpMessage) -> None:
            await ws.send_message(codec.encode(message))

        with trio.CancelScope() as scope:
            connection = Connection(
                info=info, connected_since=now, sender=send, cancel_scope=scope, last_heartbeat=now
            )
            replaced = self.hub.registry.attach(connection)
            self.hub.agent_registered(info.id)
            store = self.hub.store
            await store.put_agent(
                AgentRecord(info, AgentStatus.CONNECTED, now, now, updated_at=now)
            )
            action = "agent.replaced" if replaced else "agent.connected"
            await store.audit(
                AuditEntry(at=now, action=action, agent_id=info.id, detail=f"from {_peer(ws)}")
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
            )
            await ws.send_message(codec.encode(welcome))
            try:
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
                connection.acknowledged(message.event_id)
                received = StatusUpdate(
                    at=time.time(),
                    state=EventState.IN_PROGRESS,
                    phase=Phase.RECEIVED,
                    message="received by agent",
                )
                pending = await self._report(connection, message.event_id, received)
                if pending is not None:
                    await stored.send((pending, None))
            elif isinstance(message, Status):
                update = StatusUpdate(
                    at=message.at,
                    state=message.state,
                    phase=message.phase,
                    message=message.message,
                    resources=message.resources,
                )
                pending = await self._report(connection, message.event_id, update)
                if pending is not None:
                    connection.acknowledged(message.event_id)
                    await stored.send((pending, StatusAck(message.event_id, message.seq)))
            elif isinstance(message, Register):
                await self._refuse(
                    ws, "already_registered", f"this connection is agent {connection.agent_id!r}"
                )
            else:
                await self._refuse(
                    ws, "unexpected", f"{message.TAG!r} is not for the agent to send"
                )

    async def _acknowledge(
        self,
        connection: Connection,
        stored: trio.MemoryReceiveChannel[tuple[Pending, StatusAck | None]],
    ) -> None:
        """Once each report is written (in the order read), tell the agent it may forget it."""
        async for pending, ack in stored:
            await self.hub.updated(pending, connection.agent_id)
            # Stored, or refused as stale (the event is final): the agent may forget it.
            if ack is not None:
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
        their connections after ``dead_heartbeats`` intervals."""
        unhealthy = self.settings.heartbeat_interval * self.settings.missed_heartbeats
        dead = self.settings.dead_after
        while True:
            now = time.time()
            for connection in self.hub.registry.all():
                silent = now - connection.last_heartbeat
                if silent >= dead and not connection.cancel_scope.cancel_called:
                    log.warning(
                        "agent %s: nothing heard for %.1f s; closing its connection as dead",
                        connection.agent_id,
                        silent,
                    )
                    connection.cancel_scope.cancel()
                elif silent >= unhealthy and connection.status is AgentStatus.CONNECTED:
                    connection.status = AgentStatus.UNHEALTHY
                    log.warning("agent %s: nothing heard for %.1f s", connection.agent_id, silent)
                    await self._save_status(connection)
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
