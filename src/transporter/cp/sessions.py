"""One live session per agent across control-plane replicas.

An agent holds one connection; it can still be connected to two replicas for a while (it
dialled another after a cut that the first has not noticed yet, or a load balancer moved it).
Each connection takes a session number from the store when it is attached
(:meth:`~transporter.store.base.ReplicaFeed.claim_session`), higher than any before for the
agent, and the store tells every replica: a replica whose connection of that agent holds a
lower number closes it, without marking the agent disconnected (it is connected, elsewhere).
On one replica the newer connection already replaces the older (:class:`.live.LiveAgents`).
"""

from __future__ import annotations

import logging

from transporter.cp.live import Connection, LiveAgents
from transporter.logs import about
from transporter.store.base import Store, StoreError

log = logging.getLogger(__name__)

CLAIMS_SEEN = 10_000
"""Claims of other replicas remembered for agents whose claim here is still on its way."""


class Sessions:
    """Takes live sessions for this replica's connections, and closes those taken elsewhere."""

    def __init__(self, store: Store, live: LiveAgents) -> None:
        self._store = store
        self._live = live
        self._seen: dict[str, int] = {}
        """The highest claim heard from elsewhere for agents whose connection here has not
        got its number yet (its claim may have been overtaken)."""

    async def claim(self, connection: Connection) -> None:
        """Take the agent's live session for ``connection`` (attached already)."""
        connection.session = await self._store.claim_session(connection.agent_id)
        newer = self._seen.pop(connection.agent_id, 0)
        if newer > connection.session:
            self._close(connection, newer)

    def claimed(self, agent_id: str, seq: int) -> None:
        """Another replica took ``agent_id``'s session as number ``seq``."""
        connection = self._live.get(agent_id)
        if connection is None:
            return
        if connection.session == 0:  # our own claim has not come back yet
            if len(self._seen) < CLAIMS_SEEN or agent_id in self._seen:
                self._seen[agent_id] = max(seq, self._seen.get(agent_id, 0))
            return
        if seq > connection.session:
            self._close(connection, seq)

    async def check_all(self) -> None:
        """Close this replica's connections whose agents' live sessions are another's now,
        as the store says: after hints were missed (the feed was down), a claim of another
        replica may have been among them, and a connection left open here would go on
        writing its agent's status (unhealthy, disconnected) over the live one's. A store
        that cannot say leaves them (each asks again as it ends: :meth:`moved_on`)."""
        connections = [c for c in self._live.all() if c.session and not c.moved_elsewhere]
        try:
            live = await self._store.live_sessions([c.agent_id for c in connections])
        except StoreError as exc:
            log.warning("agents' live sessions not checked after a resync: %s", exc)
            return
        for connection, seq in zip(connections, live, strict=True):
            if seq > connection.session and self._live.get(connection.agent_id) is connection:
                self._close(connection, seq)

    async def moved_on(self, connection: Connection) -> bool:
        """Whether the agent's live session is another's now, for ``connection`` that ends:
        then the agent is connected elsewhere, and must not be marked disconnected nor its
        events taken back. Known from the hint (``moved_elsewhere``), else asked of the store
        (the hint may have been missed); a store that cannot say means no."""
        if connection.moved_elsewhere:
            return True
        if connection.session == 0:  # its claim did not come back: it never was the live one
            return False
        try:
            live = await self._store.live_session(connection.agent_id)
        except StoreError:
            return False
        connection.moved_elsewhere = live > connection.session
        return connection.moved_elsewhere

    def _close(self, connection: Connection, seq: int) -> None:
        log.info(
            "agent %s: its session %d is now on another replica (session %d); closing this"
            " connection",
            connection.agent_id,
            connection.session,
            seq,
            extra=about(agent_id=connection.agent_id),
        )
        connection.moved_elsewhere = True
        connection.cancel_scope.cancel()
