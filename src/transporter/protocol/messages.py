"""Messages on the agent channel. Each is an attrs class; the ``type`` field tags it on the wire.

agent → cp: register, heartbeat, received, status, reports
cp → agent: welcome, deliver, deliveries, status_ack, acks, error

Protocol versions: the agent says its own in ``register``; the control plane answers in
``welcome`` with the one both speak (the lower), and both keep to it on that connection.
Version 2 adds ``deliveries``, ``reports`` and ``acks``: several events, acknowledgements or
status reports in one WebSocket message, so that a busy connection carries a message per batch,
not per event or report. Version 3 adds ``replay`` to ``status``: the agent refused to run an
event again that it ran before (the control plane audits it). Version 4 makes the agent's
WebSocket frame its heartbeat: the agent sends no ``heartbeat`` message besides (one frame per
interval instead of three), and adds ``pace``: a new heartbeat interval for the rest of the
connection (the fleet grew, and shares the control plane's heartbeat budget). A field added
in a version is left out of the message when it has its default, so that older peers never
see it.
"""

from __future__ import annotations

from typing import ClassVar

import attrs

from transporter.protocol.model import AgentInfo, Event, EventState, Phase, ResourceResult

PROTOCOL_VERSION = 4
OLDEST_PROTOCOL = 1
"""The oldest protocol version the control plane still speaks (agents not yet upgraded)."""
BATCHES = 2
"""The protocol version from which ``deliveries``, ``reports`` and ``acks`` may be sent."""
REPLAYS = 3
"""The protocol version from which a ``status`` may say ``replay``."""
PINGS = 4
"""The protocol version from which the agent's ping is its heartbeat (no ``heartbeat``)."""


@attrs.frozen
class Register:
    """First message of every connection: who the agent is."""

    TAG: ClassVar[str] = "register"
    agent: AgentInfo
    protocol: int = OLDEST_PROTOCOL
    """The newest protocol version the agent speaks; a registration that names none speaks
    the oldest."""


@attrs.frozen
class Welcome:
    """The control plane accepted the registration."""

    TAG: ClassVar[str] = "welcome"
    agent_id: str
    heartbeat_interval: float
    dead_after: float = 0.0
    """Seconds of silence after which either side takes the connection for dead (0: four
    heartbeat intervals). The agent pings with each heartbeat and reconnects when no pong came
    back within this; the control plane closes a connection that sent nothing for this long."""
    protocol: int = PROTOCOL_VERSION


@attrs.frozen
class Heartbeat:
    TAG: ClassVar[str] = "heartbeat"
    at: float


@attrs.frozen
class Pace:
    """From protocol 4: the heartbeat interval and dead time for the rest of the connection,
    in place of the welcome's (the control plane's fleet grew)."""

    TAG: ClassVar[str] = "pace"
    heartbeat_interval: float
    dead_after: float


@attrs.frozen
class Deliver:
    """An event for the agent to execute."""

    TAG: ClassVar[str] = "deliver"
    event: Event


@attrs.frozen
class DeliverBatch:
    """Several events for the agent to execute (protocol 2), in the order they are to be
    taken."""

    TAG: ClassVar[str] = "deliveries"
    events: tuple[Event, ...]


@attrs.frozen
class Received:
    """The agent has the event (acknowledges a ``deliver``)."""

    TAG: ClassVar[str] = "received"
    event_id: str


@attrs.frozen
class Status:
    """A step of the agent's work on an event; ``seq`` counts the reports of one event."""

    TAG: ClassVar[str] = "status"
    event_id: str
    seq: int
    at: float
    state: EventState
    phase: Phase | None = None
    message: str = ""
    resources: tuple[ResourceResult, ...] | None = None
    replay: bool = False
    """Protocol 3: the agent ran this event before and did not run it again; the report says
    how it ended then."""


@attrs.frozen
class StatusAck:
    """The control plane stored the status report ``seq`` of ``event_id``."""

    TAG: ClassVar[str] = "status_ack"
    event_id: str
    seq: int


@attrs.frozen
class Receipt:
    """The agent has had event ``event_id`` since ``at`` (its clock, as its reports' times)."""

    event_id: str
    at: float


@attrs.frozen
class ReportBatch:
    """Several acknowledgements (``received``, with when) and ``status`` messages in one
    (protocol 2): the acknowledgements first, then the reports, each in the order the agent
    made them."""

    TAG: ClassVar[str] = "reports"
    received: tuple[Receipt, ...] = ()
    statuses: tuple[Status, ...] = ()


@attrs.frozen
class AckBatch:
    """Several ``status_ack`` messages in one (protocol 2), in the order the reports were
    stored."""

    TAG: ClassVar[str] = "acks"
    acks: tuple[StatusAck, ...]


@attrs.frozen
class Error:
    """Something the peer sent was refused. The connection stays up unless said otherwise."""

    TAG: ClassVar[str] = "error"
    code: str
    message: str


AgentMessage = Register | Heartbeat | Received | Status | ReportBatch
CpMessage = Welcome | Pace | Deliver | DeliverBatch | StatusAck | AckBatch | Error
Message = (
    Register
    | Welcome
    | Pace
    | Heartbeat
    | Deliver
    | DeliverBatch
    | Received
    | Status
    | StatusAck
    | ReportBatch
    | AckBatch
    | Error
)
MESSAGE_TYPES: tuple[type[Message], ...] = (
    Register,
    Welcome,
    Pace,
    Heartbeat,
    Deliver,
    DeliverBatch,
    Received,
    Status,
    StatusAck,
    ReportBatch,
    AckBatch,
    Error,
)
