"""The control plane's side of one agent connection, without I/O: what the agent sent and the
clock in, what to answer and what to store out. The socket code (:mod:`.agent_link`) carries
it out; tests drive this directly.

A connection starts with a registration (the first message must be ``register``, for the id in
the agent's certificate when there is one, in a protocol both speak); then every message is a
heartbeat, an acknowledgement of a delivery (``received``), a status report, or a batch of
those (protocol 2), and anything else is refused with an ``error`` without ending the
connection. Reports are the agent's word: stored within bounds
(:mod:`transporter.protocol.report_bounds`).
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs

from transporter.cp.window import DeliveryWindow
from transporter.protocol import codec
from transporter.protocol.identity import PeerCertificate
from transporter.protocol.ids import check_agent_description, check_agent_id
from transporter.protocol.messages import (
    BATCHES,
    OLDEST_PROTOCOL,
    PROTOCOL_VERSION,
    AckBatch,
    CpMessage,
    Heartbeat,
    Message,
    Received,
    Register,
    ReportBatch,
    Status,
    StatusAck,
)
from transporter.protocol.model import EventState, Phase
from transporter.protocol.report_bounds import bounded_time, bounded_update
from transporter.protocol.status import StatusUpdate


@attrs.frozen
class Refuse:
    """Answer with an ``error``; ``close``: and end the connection. ``audit``: the refusal is
    one the audit log must keep (an agent claiming another's id)."""

    code: str
    message: str
    close: bool = False
    audit: bool = False


@attrs.frozen
class Report:
    """Store ``update`` of ``event_id`` (then acknowledge ``ack``, if any, once written).

    ``sent_here``: the event was delivered on this connection, so it is the agent's; else its
    owner must be looked up first. ``replay``: the agent did not run it again (audited)."""

    event_id: str
    update: StatusUpdate
    ack: StatusAck | None
    sent_here: bool
    replay: bool = False


Outcome = Report | Refuse


class AgentConversation:
    """One connection's rules. ``certificate``: the agent's, from the TLS handshake (``None``
    on a plain channel, where any id may register)."""

    def __init__(self, certificate: PeerCertificate | None, *, max_bytes: int) -> None:
        self.certificate = certificate
        self.max_bytes = max_bytes
        self.registered: Register | None = None
        self.protocol = OLDEST_PROTOCOL

    def decode(self, text: str | bytes) -> Message | Refuse:
        """A message, or why it is refused (the connection goes on)."""
        try:
            return codec.decode(text, max_bytes=self.max_bytes)
        except codec.ProtocolError as exc:
            return Refuse(exc.code, exc.message)

    def register(self, message: Message) -> Register | Refuse:
        """The registration, or why not: refusals with ``close`` end the connection, others
        wait for a registration still."""
        if not isinstance(message, Register):
            return Refuse("not_registered", "register before anything else")
        agent = message.agent
        try:
            check_agent_id(agent.id)
            words = {
                "name": agent.name,
                "cluster_name": agent.cluster_name,
                "provider": agent.provider,
                "region": agent.region,
                "version": agent.version,
            }
            check_agent_description(agent.labels, words, agent.capabilities)
        except ValueError as exc:
            return Refuse("invalid", str(exc), close=True)
        if message.protocol < OLDEST_PROTOCOL:
            return Refuse(
                "protocol",
                f"protocol {message.protocol} not supported (this control plane speaks"
                f" {OLDEST_PROTOCOL} to {PROTOCOL_VERSION})",
                close=True,
            )
        certificate = self.certificate
        if certificate is not None and message.agent.id != certificate.agent_id:
            return Refuse(
                "identity",
                f"this connection's certificate is for agent {certificate.agent_id!r};"
                f" it may not register as {message.agent.id!r}",
                close=True,
                audit=True,
            )
        self.registered = message
        self.protocol = min(message.protocol, PROTOCOL_VERSION)  # what both speak
        return message

    def take(self, message: Message, now: float, window: DeliveryWindow) -> list[Outcome]:
        """What a message from a registered agent asks for, in order."""
        return list(self._take(message, now, window))

    def _take(self, message: Message, now: float, window: DeliveryWindow) -> Iterator[Outcome]:
        if isinstance(message, Heartbeat):
            return
        if isinstance(message, Received):
            yield self._received(message.event_id, now, now, window)
        elif isinstance(message, Status):
            yield self._status(message, now, window)
        elif isinstance(message, ReportBatch):
            for receipt in message.received:
                yield self._received(receipt.event_id, bounded_time(receipt.at, now), now, window)
            for status in message.statuses:
                yield self._status(status, now, window)
        elif isinstance(message, Register):
            agent = self.registered.agent.id if self.registered else ""
            yield Refuse("already_registered", f"this connection is agent {agent!r}")
        else:
            yield Refuse("unexpected", f"{message.TAG!r} is not for the agent to send")

    def _received(self, event_id: str, at: float, now: float, window: DeliveryWindow) -> Report:
        """The agent has the event: recorded as its ``received`` phase, at the time the agent
        says (protocol 2, as its other reports), else now."""
        window.acknowledged(event_id)
        update = StatusUpdate(
            at=at, state=EventState.IN_PROGRESS, phase=Phase.RECEIVED, message="received by agent"
        )
        return Report(event_id, update, None, event_id in window)

    def _status(self, status: Status, now: float, window: DeliveryWindow) -> Report:
        update = StatusUpdate(
            at=status.at,
            state=status.state,
            phase=status.phase,
            message=status.message,
            resources=status.resources,
        )
        ack = StatusAck(status.event_id, status.seq)
        window.acknowledged(status.event_id)  # a report says the agent has it, too
        sent_here = status.event_id in window
        return Report(status.event_id, bounded_update(update, now), ack, sent_here, status.replay)

    def acks(self, acks: list[StatusAck]) -> list[CpMessage]:
        """How the reports a write stored are acknowledged: one ``acks`` message for all when
        the agent speaks protocol 2, else one ``status_ack`` each."""
        if len(acks) > 1 and self.protocol >= BATCHES:
            return [AckBatch(tuple(acks))]
        return list(acks)
