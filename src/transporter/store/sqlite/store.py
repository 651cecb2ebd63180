"""The SQLite store, composed of its concerns' parts."""

from __future__ import annotations

from transporter.store.sqlite.agents import SQLiteAgents
from transporter.store.sqlite.audit import SQLiteAudit
from transporter.store.sqlite.credentials import SQLiteCredentials
from transporter.store.sqlite.events import SQLiteEvents
from transporter.store.sqlite.feed import SQLiteFeed
from transporter.store.sqlite.progress import SQLiteProgress
from transporter.store.sqlite.queue import SQLiteQueue
from transporter.store.sqlite.rollouts import SQLiteRollouts


class SQLiteStore(
    SQLiteEvents,
    SQLiteProgress,
    SQLiteRollouts,
    SQLiteAgents,
    SQLiteAudit,
    SQLiteCredentials,
    SQLiteFeed,
    SQLiteQueue,
):
    """The :class:`~transporter.store.base.Store` in one SQLite file. Open with :meth:`open`."""
