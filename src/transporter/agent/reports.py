"""Status reports the control plane has not acknowledged yet, kept to be sent again.

Bounded: past ``limit`` the oldest report of an event that has a newer one is dropped first
(the newer one says more), then the oldest report at all; drops are counted and logged.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

from transporter.protocol.messages import Status

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 10_000


class Reports:
    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self._pending: OrderedDict[tuple[str, int], Status] = OrderedDict()
        self.dropped = 0

    def add(self, report: Status) -> None:
        self._pending[(report.event_id, report.seq)] = report
        while len(self._pending) > self.limit:
            self._drop_one()

    def ack(self, event_id: str, seq: int) -> None:
        self._pending.pop((event_id, seq), None)

    def pending(self) -> list[Status]:
        """Unacknowledged reports, oldest first."""
        return list(self._pending.values())

    def __len__(self) -> int:
        return len(self._pending)

    def _drop_one(self) -> None:
        newest: dict[str, int] = {}
        for event_id, seq in self._pending:
            newest[event_id] = max(seq, newest.get(event_id, seq))
        for key in self._pending:
            if key[1] < newest[key[0]]:
                del self._pending[key]
                break
        else:
            self._pending.popitem(last=False)
        self.dropped += 1
        log.warning(
            "report buffer full (%d): dropped a report (%d so far)", self.limit, self.dropped
        )
