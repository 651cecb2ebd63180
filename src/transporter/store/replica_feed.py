"""How control-plane replicas on one store hear at once what the others wrote: the part of the
:class:`~transporter.store.base.Store` boundary that is about several processes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import trio


class ChangeSink(Protocol):
    """Where a replica hears what other replicas on the same store changed (:meth:`ReplicaFeed.
    follow_changes`). Each call is a hint: the store stays the truth, and a hint missed (a
    reconnect of the feed) is made good by :meth:`resync`."""

    def queued(self, agent_id: str) -> None:
        """An event for ``agent_id`` was stored (its outbox has something new)."""

    def progressed(self, event_id: str, agent_id: str, *, terminal: bool) -> None:
        """Event ``event_id`` of ``agent_id`` changed (``terminal``: it ended)."""

    def claimed(self, agent_id: str, seq: int) -> None:
        """A replica took ``agent_id``'s live session as number ``seq``
        (:meth:`ReplicaFeed.claim_session`): a connection of the agent with a lower number is
        no longer its live one."""

    def resync(self) -> None:
        """Hints may have been missed (the feed was down): look at everything again."""


class ReplicaFeed(Protocol):
    """How replicas on one store tell each other at once of what they wrote. A store that only
    one process uses (SQLite) has nothing to tell: its feed is silent."""

    async def follow_changes(
        self, sink: ChangeSink, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Hand ``sink`` the changes other replicas (not this store object) write, until
        cancelled; started once listening. Never raises for an outage: it listens again, and
        calls ``sink.resync()`` each time it does."""
        ...

    async def claim_session(self, agent_id: str) -> int:
        """Take ``agent_id``'s live session for a connection of this replica: returns its
        number, higher than any taken before for the agent, and tells every replica
        (``ChangeSink.claimed``)."""
        ...

    async def live_session(self, agent_id: str) -> int:
        """The number of ``agent_id``'s live session (the last one taken), 0 when none was
        (or the store has one process): how a connection that ends learns that its agent has
        moved on to another replica though the hint of it was missed."""
        ...

    async def live_sessions(self, agent_ids: Sequence[str]) -> list[int]:
        """:meth:`live_session` of each of ``agent_ids``, in order, in one read (however many):
        how a replica that missed hints finds its connections whose agents moved on."""
        ...
