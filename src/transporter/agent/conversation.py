"""The agent's side of its connection, without I/O: what the control plane sent and the clock
in, what to send and what to do out. The socket code (:mod:`.session`) carries it out; tests
drive this directly.

The agent registers first and must be welcomed; then the control plane delivers events (alone
or in batches) and acknowledges reports (alone or in batches), and the agent sends what it
received and its reports: in ``reports`` batches when the control plane reads them (protocol
2), with the ``replay`` word only to one that knows it (protocol 3). Reports not acknowledged
are kept (:mod:`.reports`) and sent again on the next connection.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence

import attrs

from transporter.agent.reports import Reports
from transporter.logs import about
from transporter.protocol import codec
from transporter.protocol.messages import (
    BATCHES,
    OLDEST_PROTOCOL,
    PROTOCOL_VERSION,
    REPLAYS,
    AckBatch,
    Deliver,
    DeliverBatch,
    Error,
    Message,
    Pace,
    Receipt,
    Received,
    Register,
    ReportBatch,
    Status,
    StatusAck,
    Welcome,
)
from transporter.protocol.model import AgentInfo, Event

log = logging.getLogger(__name__)

CLOCK_SKEW = 300.0
"""Seconds an event may arrive after its TTL passed (by this host's clock) and still run: the
control plane never sends one after, but the two clocks may disagree."""
BATCH_RECEIVED = 256
"""Acknowledgements of deliveries sent in one ``reports`` message at most."""
BATCH_STATUSES = 64
"""Status reports sent in one ``reports`` message at most."""
BATCH_RESOURCES = 16
"""A report with more resources' results than this is sent in a message of its own (it may
be large; a batch of them could pass the control plane's message size limit)."""
BATCH_MESSAGE_CHARS = 4096
DEFAULT_INTERVAL = 5.0
LEAST_INTERVAL = 0.05
MOST_INTERVAL = 300.0
DEAD_HEARTBEATS = 4
"""Heartbeat intervals without an answer before the connection is dropped, when the control
plane did not say (``dead_after`` 0)."""


def paced(interval: float, dead_after: float) -> tuple[float, float]:
    """The heartbeat interval and dead time to keep to, from what the control plane said,
    within bounds (a value that is no number never makes a busy loop nor a silent agent)."""
    if not math.isfinite(interval):
        interval = DEFAULT_INTERVAL
    interval = min(max(interval, LEAST_INTERVAL), MOST_INTERVAL)
    if not math.isfinite(dead_after) or dead_after <= 0:
        dead_after = interval * DEAD_HEARTBEATS
    return interval, min(max(dead_after, interval), interval * 100)


class Rejected(Exception):
    """The control plane refused this agent (bad registration); retrying will not help soon."""


class Conversation:
    """What the agent has to say, kept across connections (the reports not acknowledged, the
    deliveries not yet confirmed), and the rules of one connection at a time."""

    def __init__(self, info: AgentInfo, reports: Reports | None = None) -> None:
        self.info = info
        self.reports = reports or Reports()
        self.protocol = OLDEST_PROTOCOL
        self.pace = paced(DEFAULT_INTERVAL, 0.0)
        """The heartbeat interval and dead time, as the control plane said last."""
        self._received: list[Receipt] = []

    # --- a connection's start -----------------------------------------------------------------

    def hello(self) -> Register:
        return Register(agent=self.info, protocol=PROTOCOL_VERSION)

    def welcome(self, message: Message) -> Welcome:
        """The control plane's answer to :meth:`hello`; :class:`Rejected` unless a welcome.
        From here, every report not acknowledged is to be sent again."""
        if isinstance(message, Error):
            raise Rejected(f"{message.code}: {message.message}")
        if not isinstance(message, Welcome):
            raise Rejected(f"expected welcome, got {message.TAG}")
        self.protocol = min(message.protocol, PROTOCOL_VERSION)
        self.pace = paced(message.heartbeat_interval, message.dead_after)
        self.reports.resend_all()
        return message

    # --- from the worker ----------------------------------------------------------------------

    def received(self, event_id: str, now: float) -> None:
        self._received.append(Receipt(event_id, now))

    def report(self, status: Status) -> None:
        self.reports.add(status)

    # --- to the control plane -----------------------------------------------------------------

    def outgoing(self) -> Sequence[Received | Status | ReportBatch]:
        """What to send now, in order (deliveries confirmed, then reports); it counts as sent."""
        received, self._received = self._received, []
        statuses = self.reports.take_unsent()
        if self.protocol < REPLAYS:  # a control plane that does not know the word
            statuses = [attrs.evolve(s, replay=False) if s.replay else s for s in statuses]
        if self.protocol >= BATCHES:
            return batched(received, statuses)
        return [*(Received(receipt.event_id) for receipt in received), *statuses]

    # --- from the control plane ---------------------------------------------------------------

    def incoming(self, text: str | bytes) -> list[Event]:
        """The events a message delivers, to be checked and run; acknowledgements are taken,
        anything else is logged (a message that cannot be read too: the connection goes on)."""
        try:
            message: Message = codec.decode(text)
        except codec.ProtocolError as exc:
            log.warning("control plane sent an invalid message: %s", exc.message)
            return []
        return list(self._incoming(message))

    def _incoming(self, message: Message) -> Iterator[Event]:
        if isinstance(message, Deliver):
            yield message.event
        elif isinstance(message, DeliverBatch):
            yield from message.events
        elif isinstance(message, StatusAck):
            self.reports.ack(message.event_id, message.seq)
        elif isinstance(message, AckBatch):
            for ack in message.acks:
                self.reports.ack(ack.event_id, ack.seq)
        elif isinstance(message, Pace):
            self.pace = paced(message.heartbeat_interval, message.dead_after)
        elif isinstance(message, Error):
            log.warning("control plane refused a message: %s: %s", message.code, message.message)
        else:
            log.warning("control plane sent an unexpected %r message", message.TAG)

    def refusal(self, event: Event, now: float) -> str | None:
        """Why a signed ``event`` must not run here (its report's message), or ``None``."""
        if event.target_agent != self.info.id:
            log.warning(
                "event %s refused: it is for agent %s",
                event.id,
                event.target_agent,
                extra=about(event_id=event.id),
            )
            return f"event for agent {event.target_agent!r}, not this one: refused"
        late = now - event.expires_at
        if late > CLOCK_SKEW:
            # Signed, but old: someone who can write to the store could put back an event
            # that ran long ago (a delete, say); its TTL, which the signature covers, says no.
            log.warning(
                "event %s refused: its TTL passed %.0f s ago",
                event.id,
                late,
                extra=about(event_id=event.id),
            )
            return f"its TTL passed {late:.0f} s ago: refused"
        return None


def batched(received: list[Receipt], statuses: list[Status]) -> list[Status | ReportBatch]:
    """The messages that carry ``received`` and then ``statuses``, in that order: ``reports``
    of a bounded size, a lone report as itself, and a large report (many resources' results,
    or a long message) always in a message of its own."""
    messages: list[Status | ReportBatch] = []
    run: list[Status] = []

    def flush(ids: list[Receipt]) -> None:
        if not ids and len(run) == 1:
            messages.append(run[0])
        elif ids or run:
            messages.append(ReportBatch(received=tuple(ids), statuses=tuple(run)))
        run.clear()

    chunks = [received[i : i + BATCH_RECEIVED] for i in range(0, len(received), BATCH_RECEIVED)]
    ids = chunks.pop() if chunks else []  # the last goes with the first reports
    for chunk in chunks:
        flush(chunk)
    for status in statuses:
        large = (
            len(status.resources or ()) > BATCH_RESOURCES
            or len(status.message) > BATCH_MESSAGE_CHARS
        )
        if large:
            flush(ids)
            ids = []
            messages.append(status)
        else:
            run.append(status)
            if len(run) == BATCH_STATUSES:
                flush(ids)
                ids = []
    flush(ids)
    return messages
