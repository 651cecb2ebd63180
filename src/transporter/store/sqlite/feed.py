"""The SQLite store's :class:`~transporter.store.base.ReplicaFeed`."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import trio

from transporter.store.base import ChangeSink
from transporter.store.sqlite.connection import SQLiteConnection


class SQLiteFeed(SQLiteConnection):
    _sessions = itertools.count(1)

    async def follow_changes(
        self, sink: ChangeSink, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        await trio.sleep_forever()

    async def claim_session(self, agent_id: str) -> int:
        return next(self._sessions)

    async def live_session(self, agent_id: str) -> int:
        return 0  # one process: its connections replace each other (cp/live.py)

    async def live_sessions(self, agent_ids: Sequence[str]) -> list[int]:
        return [0] * len(agent_ids)
