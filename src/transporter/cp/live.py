"""The agents connected to this control-plane process, and how to reach each one.

In memory only: what must survive a restart (the agents' records, their outboxes) is in the
store. One connection per agent id; a newer connection replaces the older, which is closed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import attrs
import trio

from transporter.cp.window import DeliveryWindow
from transporter.protocol import codec
from transporter.protocol.identity import PeerCertificate
from transporter.protocol.messages import CpMessage
from transporter.protocol.model import AgentInfo, AgentStatus, EventRecord

WINDOW = 256
"""Events in flight to one agent at most; the agent's own concurrency limit is smaller."""


class Doorbell:
    """Wakes whoever waits for something to look at; a ring while nobody waits is kept.

    Costs nothing until someone waits (10,000 idle connections have a bell each): the
    ``trio.Event`` is made by the first waiter and let go by the ring."""

    def __init__(self) -> None:
        self._rung = False
        self._waiters: trio.Event | None = None

    def ring(self) -> None:
        self._rung = True
        if self._waiters is not None:
            self._waiters.set()
            self._waiters = None

    @property
    def rung(self) -> bool:
        """Rung since the last wait."""
        return self._rung

    async def wait(self) -> None:
        """Until rung (at once if it rang since the last wait). Bound it with a cancel scope:
        a ring that comes as the wait is cancelled is kept for the next."""
        if not self._rung:
            if self._waiters is None:
                self._waiters = trio.Event()
            await self._waiters.wait()
        self._rung = False


class Courier(Protocol):
    """What delivers to connections (:class:`~.delivery.Delivery`)."""

    def start(self, connection: Connection) -> None:
        """Start the connection's delivery task, if none runs."""

    async def express(
        self, connection: Connection, claimed: int, sent: Sequence[EventRecord]
    ) -> bool:
        """Hand back a delivery taken with :meth:`Connection.claim`: send ``sent`` (events
        stored sent after ``seq`` ``claimed``) now, then deliver as usual. ``False`` when
        the connection was not served any more (nothing sent: the agent's next connection
        reads them)."""


@attrs.define(eq=False)
class Connection:
    """One live agent connection."""

    info: AgentInfo
    connected_since: float
    sender: Callable[[str], Awaitable[None]]
    """Writes one message, encoded, to the agent's socket (safe from several tasks at once)."""
    cancel_scope: trio.CancelScope
    last_heard: float
    status: AgentStatus = AgentStatus.CONNECTED
    outbox_bell: Doorbell = attrs.field(factory=Doorbell)
    """Rung when the agent may have something new to receive (new event, slot freed)."""
    window: DeliveryWindow = attrs.field(factory=lambda: DeliveryWindow(WINDOW))
    certificate: PeerCertificate | None = None
    """The agent's client certificate (``None`` on a plain ``ws://`` channel): a revocation of
    it closes this connection."""
    protocol: int = 1
    """The protocol version spoken on this connection (the lower of the agent's and ours)."""
    session: int = 0
    """The number of the agent's live session this connection holds (:mod:`.sessions`); 0
    until taken."""
    courier: Courier | None = None
    """What starts this connection's delivery task when its bell rings (:mod:`.delivery`):
    set while the connection is served."""
    work: trio.Nursery | None = None
    """Where the connection's delivery task runs, while it is served."""
    delivering: bool = False
    """A delivery task runs for this connection (:mod:`.delivery`): only while the agent has
    events to receive or in flight."""
    sent_seq: int = 0
    """The outbox's last ``seq`` read for this connection (:mod:`.delivery`)."""
    news: bool = False
    """The outbox may hold something not read yet (:meth:`ring`): the delivery reads it."""
    held_back: bool = False
    """The last read of the outbox filled the window: more may wait for a slot."""
    look_at: float = 0.0
    """When (trio's clock) the next safety look at the outbox is due (:mod:`.delivery`)."""
    heartbeat_interval: float = 0.0
    """The interval told to the agent in its welcome (0: not yet welcomed)."""
    moved_elsewhere: bool = False
    """Closed because the agent's live session is now on another replica: that replica keeps
    its record and its outbox, this one must not mark it disconnected."""

    @property
    def agent_id(self) -> str:
        return self.info.id

    def ring(self) -> None:
        """The agent may have something new to receive (a new event, a slot freed while
        events were held back): wakes its delivery task, which reads the outbox, or starts
        one."""
        self.news = True
        self.outbox_bell.ring()
        if self.courier is not None and not self.delivering:
            self.courier.start(self)

    def claim(self) -> int | None:
        """Take this connection's delivery for an event about to be stored (:mod:`.intake`),
        if it is idle: nothing in flight held back, nothing rung, room in the window. Returns
        the outbox's last ``seq`` read (the store sends the event at once if nothing
        unfinished came after it), or ``None``. Hand it back with :meth:`Courier.express`;
        meanwhile no delivery task starts (a ring is kept for after)."""
        if self.courier is None or self.delivering or self.news or self.held_back:
            return None
        if self.window.room <= 0:
            return None
        self.delivering = True
        return self.sent_seq

    def slot_freed(self) -> None:
        """An event in flight ended. Its delivery task reads the outbox again only if the
        window held events back; else it is only woken (to end once nothing is in flight):
        an event stored since rang on its own."""
        if self.held_back:
            self.ring()
        else:
            self.outbox_bell.ring()

    async def send(self, message: CpMessage) -> None:
        await self.sender(codec.encode(message))

    async def send_text(self, text: str) -> None:
        """A message already encoded (:func:`~transporter.protocol.codec.deliveries_text`)."""
        await self.sender(text)


class LiveAgents:
    """The connections of this process, by agent id."""

    def __init__(self) -> None:
        self._connections: dict[str, Connection] = {}
        self.known = 0
        """Agents the store knew of when the channel started (the heartbeat budget's fleet)."""

    @property
    def fleet(self) -> int:
        """The agents the heartbeat budget is shared by: those known, or those connected here
        if more."""
        return max(self.known, len(self._connections))

    def attach(self, connection: Connection) -> Connection | None:
        """Make ``connection`` the agent's current one; returns the one it replaces (closed)."""
        previous = self._connections.get(connection.agent_id)
        self._connections[connection.agent_id] = connection
        if previous is not None:
            previous.cancel_scope.cancel()
        return previous

    def detach(self, connection: Connection) -> bool:
        """Forget ``connection`` if it is still the agent's current one."""
        if self._connections.get(connection.agent_id) is connection:
            del self._connections[connection.agent_id]
            return True
        return False

    def get(self, agent_id: str) -> Connection | None:
        return self._connections.get(agent_id)

    def ring(self, agent_id: str) -> None:
        """The agent may have something new to receive."""
        connection = self._connections.get(agent_id)
        if connection is not None:
            connection.ring()

    def finished(self, agent_id: str, event_id: str) -> None:
        """``event_id`` of ``agent_id`` ended: its slot on the agent's connection is free."""
        connection = self._connections.get(agent_id)
        if connection is not None and connection.window.finished(event_id):
            connection.slot_freed()

    def __len__(self) -> int:
        return len(self._connections)

    def all(self) -> list[Connection]:
        return list(self._connections.values())
