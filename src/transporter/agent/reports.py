"""Status reports the control plane has not acknowledged yet, kept to be sent again.

Each report is sent once per connection: :meth:`Reports.take_unsent` hands out the ones not yet
sent, and :meth:`Reports.resend_all` (on a new connection) makes every unacknowledged report
unsent again. Bounded: past ``limit`` the oldest report of an event that has a newer one is
dropped first (the newer one says more), then the oldest report at all; drops are counted and
logged.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque

from transporter.protocol.messages import Status

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 10_000

Key = tuple[str, int]


class Reports:
    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self._pending: OrderedDict[Key, Status] = OrderedDict()
        self._newest: dict[str, int] = {}
        self._unsent: deque[Key] = deque()
        self.dropped = 0

    def add(self, report: Status) -> None:
        key = (report.event_id, report.seq)
        self._pending[key] = report
        self._newest[report.event_id] = max(report.seq, self._newest.get(report.event_id, 0))
        self._unsent.append(key)
        while len(self._pending) > self.limit:
            self._drop_one()

    def ack(self, event_id: str, seq: int) -> None:
        self._pending.pop((event_id, seq), None)
        if self._newest.get(event_id) == seq:
            del self._newest[event_id]

    def is_pending(self, report: Status) -> bool:
        """Whether ``report`` waits for its acknowledgement."""
        return (report.event_id, report.seq) in self._pending

    def take_unsent(self) -> list[Status]:
        """Reports not sent on this connection yet, oldest first; they count as sent now."""
        taken = [self._pending[key] for key in self._unsent if key in self._pending]
        self._unsent.clear()
        return taken

    def resend_all(self) -> None:
        """A new connection: every unacknowledged report is to be sent again, in order."""
        self._unsent = deque(self._pending)

    def pending(self) -> list[Status]:
        """Unacknowledged reports, oldest first."""
        return list(self._pending.values())

    def __len__(self) -> int:
        return len(self._pending)

    def _drop_one(self) -> None:
        for key in self._pending:  # oldest first; superseded ones are usually near the front
            if key[1] < self._newest.get(key[0], 0):
                del self._pending[key]
                break
        else:
            key, _ = self._pending.popitem(last=False)
            if self._newest.get(key[0]) == key[1]:
                del self._newest[key[0]]
        self.dropped += 1
        log.warning(
            "report buffer full (%d): dropped a report (%d so far)", self.limit, self.dropped
        )
