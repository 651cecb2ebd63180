"""The agent channel: a WebSocket server on our own trio listener, where agents dial in.

Secure by default: the channel is TLS, and every agent shows a client certificate from the
control plane's CA (:mod:`transporter.cp.tls`). The TLS handshake happens before the WebSocket
upgrade (bounded: :attr:`ChannelSettings.handshakes`); the agent's id is the one its certificate
names. A revoked certificate is refused at the upgrade (403, audited), and a revocation the
control plane learns of (:mod:`transporter.cp.revocations`) closes the connection that uses it
(audited). Only with ``--insecure-plain-ws`` is the channel plain WebSocket, where an agent may
register as any id. Each upgraded connection is an :class:`~.agent_link.AgentLink`.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import time

import attrs
import trio
from wsproto.utilities import RemoteProtocolError

from transporter.config.values import Address
from transporter.cp.agent_link import PATH, AgentLink, LinkSettings, Parts
from transporter.cp.connections import Gate, Limits, Throttled, Turns, accept_within, peer_of
from transporter.cp.delivery import ACK_TIMEOUT
from transporter.cp.framing import Closed, Upgrade
from transporter.cp.health import watch_health
from transporter.cp.http import open_listeners
from transporter.cp.live import Connection
from transporter.cp.pace import keep_pace
from transporter.cp.replicas import REPLICA_LOOK
from transporter.cp.revocations import RevocationWatch
from transporter.cp.roster import save_status
from transporter.cp.tls import HandshakeFailed, handshake, peer_certificate
from transporter.cp.tls_stream import TLSStream
from transporter.logs import about
from transporter.protocol import codec
from transporter.protocol.identity import IdentityError, PeerCertificate, Revocation
from transporter.protocol.messages import Error
from transporter.protocol.model import AuditEntry
from transporter.store.base import StoreUnavailable

log = logging.getLogger(__name__)

__all__ = ["PATH", "AgentChannel", "ChannelSettings"]

HANDSHAKES = Limits(total=1024, per_address=32, handshake_timeout=10.0)
"""Bounds of the agent channel's connections before their TLS handshake is done, those waiting
for a turn included (:attr:`ChannelSettings.handshakes`)."""


@attrs.frozen(kw_only=True)
class ChannelSettings:
    heartbeat_interval: float = 5.0
    """Seconds between an agent's heartbeats at least (told to it in ``welcome``); more when
    the fleet is larger than ``heartbeat_budget`` allows at this interval."""
    heartbeat_budget: float = 650.0
    """Heartbeats a second the control plane takes from its agents at rest: an agent is told
    the interval at which the whole fleet (the agents in the store, or connected here if more)
    sends this many. Each is a frame to read (protocol 4), and the agent's ping every third a
    pong to send: 10,000 agents at 650 a second (an interval of 15.4 s) cost under a tenth of
    a core (``bench/scale.py``); up to 3,250 agents keep the 5 s interval."""
    missed_heartbeats: int = 2
    """An agent is ``unhealthy`` after this many intervals without a message."""
    dead_heartbeats: int = 4
    """After this many intervals without a message the connection is closed as dead (20 s at
    5 s; noticed within a quarter interval more). The agent is told, and takes the connection
    for dead after as long without an answer to its pings."""
    ack_timeout: float = ACK_TIMEOUT
    """Seconds the agent has to acknowledge a delivery before it is sent again."""
    replica_look: float = REPLICA_LOOK
    """Seconds between the looks at the store for what a missed hint of another replica would
    have told (:mod:`.replicas`); tests set an hour to show that the hints do the work."""
    register_timeout: float = 10.0
    connect_timeout: float = 10.0
    """Seconds for the WebSocket upgrade after the TLS handshake."""
    max_message_bytes: int = codec.MAX_MESSAGE_BYTES
    handshakes: Limits = HANDSHAKES
    """Connections let in before their TLS handshake is done, in all and from one address,
    and how long each handshake may take: an unauthenticated flood is closed before it costs
    TLS work or memory."""
    handshakes_running: int = 128
    """TLS handshakes under way at once; the others let in wait their turn
    (:class:`~.connections.Turns`). A handshake is CPU work: more at once are each slower,
    not more done."""
    handshake_wait: float = 25.0
    """Seconds a connection waits for its turn before it is closed (the agent then dials
    again after its backoff): within the agent's patience once its connection is taken (30 s,
    ``ANSWER_TIMEOUT`` of :mod:`transporter.agent.session`). In a reconnect storm of 10,000,
    at 6 s hundreds were closed and sent into a longer backoff."""

    @property
    def dead_after(self) -> float:
        """At the least interval: an agent told a longer one is given as many intervals."""
        return self.heartbeat_interval * self.dead_heartbeats

    @property
    def link(self) -> LinkSettings:
        return LinkSettings(
            heartbeat_interval=self.heartbeat_interval,
            heartbeat_budget=self.heartbeat_budget,
            dead_heartbeats=self.dead_heartbeats,
            register_timeout=self.register_timeout,
            max_message_bytes=self.max_message_bytes,
        )


class AgentChannel:
    def __init__(
        self,
        parts: Parts,
        settings: ChannelSettings,
        *,
        tls: ssl.SSLContext | None,
        revocations: RevocationWatch | None = None,
    ) -> None:
        """``tls``: the server context (client certificates required); ``None`` serves plain
        WebSocket (``--insecure-plain-ws``). ``revocations``: loaded already."""
        self.settings = settings
        self.tls = tls
        self.revocations = revocations
        self.parts = parts
        self.link = settings.link
        self.handshakes = Gate("agent channel", settings.handshakes)
        self.turns = Turns(running=settings.handshakes_running, wait=settings.handshake_wait)
        self._failed_handshakes = Throttled(log)
        self.churn = 0
        """Connections attached plus those ended, and handshakes, so far (:mod:`.trim`)."""

    async def serve(
        self,
        address: Address,
        *,
        task_status: trio.TaskStatus[list[Address]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve until cancelled; ``started()`` gives the bound addresses."""
        # The fleet the heartbeat budget is shared by: the agents the store knows (one read).
        self.parts.live.known = len(await self.parts.store.list_agents())
        listeners = await open_listeners(address, "--agent-listen")
        bound = [Address(*listener.socket.getsockname()[:2]) for listener in listeners]
        async with trio.open_nursery() as nursery:
            serve = self._serve_plain if self.tls is None else self._serve_tls
            gate = None if self.tls is None else self.handshakes
            for listener in listeners:
                nursery.start_soon(accept_within, gate, listener, serve, nursery)
            if self.revocations is not None:
                nursery.start_soon(self.revocations.run, self._revoked)
            nursery.start_soon(self._watch_health)
            nursery.start_soon(keep_pace, self.parts.live, self.link)
            nursery.start_soon(self.parts.delivery.look_after, self.parts.live)
            task_status.started(bound)

    def _changed(self) -> None:
        self.churn += 1

    async def _serve_plain(self, stream: trio.SocketStream) -> None:
        peer = address_of(stream)
        try:
            ready = await self._upgrade(stream, peer)
            if ready is not None:
                await ready[0].serve(ready[1], self._changed, peer)
        finally:
            await trio.aclose_forcefully(stream)

    # --- TLS and the agent's certificate ----------------------------------------------------

    async def _serve_tls(self, stream: trio.SocketStream) -> None:
        """One TCP connection, let in by the handshakes' bound (:meth:`_accept`): the TLS
        handshake (a client certificate from our CA), then the WebSocket upgrade, refused for a
        certificate that names no agent or is revoked."""
        address = peer_of(stream)
        tls = None
        try:
            if await self.turns.take():
                try:
                    tls = await self._handshake(stream)
                finally:
                    self.turns.give_back()
            else:
                self.handshakes.refused += 1
                self._failed_handshakes.warning(
                    "agent channel %s: no TLS handshake turn within %g s (%d under way); closed",
                    address,
                    self.turns.wait,
                    self.turns.running,
                )
                await trio.aclose_forcefully(stream)
        finally:
            self.handshakes.leave(address)
            self._changed()  # a flood of handshakes leaves memory to give back too
        if tls is None:
            return
        # Served here, not in a helper: an idle connection waits in this frame (each
        # coroutine on its chain is memory).
        peer = address_of(stream)
        try:
            certificate, refusal = await self._admit(tls, peer)
            ready = await self._upgrade(tls, peer, certificate, refusal)
            if ready is not None:
                await ready[0].serve(ready[1], self._changed, peer)
        finally:
            await trio.aclose_forcefully(tls)

    async def _handshake(self, stream: trio.SocketStream) -> TLSStream | None:
        assert self.tls is not None
        timeout = self.handshakes.limits.handshake_timeout
        try:
            with trio.fail_after(timeout):
                return await handshake(stream, self.tls)
        except (HandshakeFailed, trio.TooSlowError) as exc:
            reason = str(exc) or f"no TLS handshake within {timeout:g} s"
            self._failed_handshakes.warning(
                "agent channel %s: TLS handshake failed: %s", address_of(stream), reason
            )
            await trio.aclose_forcefully(stream)
            return None

    async def _upgrade(
        self,
        stream: trio.abc.Stream,
        peer: str,
        certificate: PeerCertificate | None = None,
        refusal: str = "",
    ) -> tuple[AgentLink, Upgrade] | None:
        """The WebSocket upgrade's request (within ``connect_timeout``), and the link that
        will serve it; ``None`` when there is none to serve: refused (``refusal``: why it is
        answered 403), or the connection lost."""
        upgrade = Upgrade(stream, max_message_bytes=self.settings.max_message_bytes)
        try:
            asked = False
            with trio.move_on_after(self.settings.connect_timeout):
                asked = await upgrade.request()
            if asked and refusal:
                log.warning("agent channel %s: refused: %s", peer, refusal)
                await upgrade.reject(403, f"{refusal}\n")
            elif asked:
                link = AgentLink(self.parts, self.link, certificate, self)
                return link, upgrade
        except (Closed, trio.BrokenResourceError, trio.ClosedResourceError, RemoteProtocolError):
            log.debug("agent channel %s: connection lost during the upgrade", peer)
        except Exception:
            # A bug of ours must end this connection only, never the server.
            log.exception("agent channel %s: connection handler failed", peer)
        return None

    async def _admit(self, tls: TLSStream, peer: str) -> tuple[PeerCertificate | None, str]:
        """The agent's certificate, and why it is refused (``""``: it is not)."""
        try:
            certificate = peer_certificate(tls)
        except (IdentityError, ValueError) as exc:
            return None, f"the client certificate names no agent: {exc}"
        revoked = self._revocation_of(certificate)
        if revoked is None:
            return certificate, ""
        refusal = f"certificate {revoked.kind} {revoked.value} is revoked"
        await self.audit_safely(
            AuditEntry(
                at=time.time(),
                action="agent.refused",
                agent_id=certificate.agent_id,
                detail=f"{refusal} (from {peer})",
            )
        )
        return certificate, refusal

    def _revocation_of(self, certificate: PeerCertificate) -> Revocation | None:
        if self.revocations is None:
            return None
        return self.revocations.revoked.covers(certificate)

    def is_revoked(self, certificate: PeerCertificate) -> bool:
        return self._revocation_of(certificate) is not None

    async def audit_safely(self, entry: AuditEntry) -> None:
        """An audit entry outside any connection's own failures: a store outage is logged, it
        must not end the agent channel (a revoked agent dials again and again, with backoff)."""
        try:
            await self.parts.store.audit(entry)
        except StoreUnavailable as exc:
            log.warning(
                "audit entry %s for %s not written: %s",
                entry.action,
                entry.agent_id,
                exc,
                extra=about(agent_id=entry.agent_id, event_id=entry.event_id),
            )

    async def _revoked(self, revocations: list[Revocation]) -> None:
        """Close the connections whose certificates were just revoked (first all of them, at
        once; then the audit entries)."""
        closed = []
        for connection in self.parts.live.all():
            certificate = connection.certificate
            found = [r for r in revocations if certificate and certificate.revoked_by(r)]
            if found:
                connection.cancel_scope.cancel()
                closed.append((connection, found[0]))
        for connection, revocation in closed:
            what = f"certificate {revocation.kind} {revocation.value}"
            gone = (Closed, trio.BrokenResourceError, trio.ClosedResourceError)
            with trio.move_on_after(1), contextlib.suppress(*gone):  # tell the agent why
                await connection.send(
                    Error(
                        code="revoked",
                        message=f"this agent's {what} is revoked; the connection is closed",
                    )
                )
            log.warning(
                "agent %s: %s revoked; connection closed",
                connection.agent_id,
                what,
                extra=about(agent_id=connection.agent_id),
            )
            await self.audit_safely(
                AuditEntry(
                    at=time.time(),
                    action="agent.revoked",
                    agent_id=connection.agent_id,
                    detail=f"{what} revoked; connection closed",
                )
            )

    async def _watch_health(self) -> None:
        interval = self.settings.heartbeat_interval

        async def save(connection: Connection) -> None:
            try:
                await save_status(self.parts.arrivals, connection)
            except StoreUnavailable as exc:  # shown again when it speaks or goes
                self.parts.arrivals.unsaved.warning(
                    "agent %s: status not saved: %s", connection.agent_id, exc
                )

        await watch_health(
            self.parts.live,
            interval=interval,
            missed=self.settings.missed_heartbeats,
            dead=self.settings.dead_heartbeats,
            save_status=save,
            audit=self.audit_safely,
        )


def address_of(stream: trio.SocketStream) -> str:
    try:
        host, port = stream.socket.getpeername()[:2]
    except OSError:
        return "(gone)"
    return f"{host}:{port}"
