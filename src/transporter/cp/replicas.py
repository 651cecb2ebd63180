"""What this replica does with the hints of the others (:class:`~transporter.store.base.
ChangeSink`): an event stored for an agent connected here is sent at once, a waiting
``GET /events/{id}?wait`` answers at once, a session taken elsewhere is closed here.

The hints only wake; what is sent or answered is read from the store. A hint missed (the feed
was down) is made good by :meth:`ReplicaHints.resync` (which also closes the connections whose
sessions another replica took meanwhile), and, in any case, by the safety looks of the
delivery tasks and of the waiting requests, every :data:`REPLICA_LOOK` seconds.
"""

from __future__ import annotations

import trio

from transporter.cp.live import Doorbell, LiveAgents
from transporter.cp.sessions import Sessions
from transporter.cp.watch import EventWatch
from transporter.store.replica_feed import ReplicaFeed

REPLICA_LOOK = 30.0
"""Seconds between the looks at the store that catch what a missed hint would have told (each
connection at its outbox, each waiting request at its event). Rare, because hints carry the
news: at 10,000 agents, a look every 30 s is 333 small reads a second at rest."""


class ReplicaHints:
    """The :class:`~transporter.store.base.ChangeSink` of one control plane."""

    def __init__(self, live: LiveAgents, watch: EventWatch, sessions: Sessions) -> None:
        self._live = live
        self._watch = watch
        self._sessions = sessions
        self._resynced = Doorbell()

    async def run(
        self, feed: ReplicaFeed, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Follow ``feed`` until cancelled (started as it is); after each resync, the live
        sessions of this replica's connections are checked in the store (a claim may have
        been missed)."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._check_sessions)
            await nursery.start(feed.follow_changes, self)
            task_status.started()

    async def _check_sessions(self) -> None:
        while True:
            await self._resynced.wait()
            await self._sessions.check_all()

    def queued(self, agent_id: str) -> None:
        self._live.ring(agent_id)

    def progressed(self, event_id: str, agent_id: str, *, terminal: bool) -> None:
        self._watch.changed(event_id)
        if terminal:
            self._live.finished(agent_id, event_id)

    def claimed(self, agent_id: str, seq: int) -> None:
        self._sessions.claimed(agent_id, seq)

    def resync(self) -> None:
        for connection in self._live.all():
            connection.ring()
        self._watch.changed_all()
        self._resynced.ring()
