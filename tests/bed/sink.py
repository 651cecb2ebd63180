"""Where a worker's messages go in tests that run no session: kept, to look at."""

from __future__ import annotations

from transporter.protocol.messages import Status


class RecordingSink:
    """The session's side of the worker: acknowledgements and reports, recorded; ``stored``
    holds the reports the control plane would have acknowledged."""

    def __init__(self) -> None:
        self.acks: list[str] = []
        self.reports: list[Status] = []
        self.stored: set[tuple[str, int]] = set()

    def received(self, event_id: str) -> None:
        self.acks.append(event_id)

    def report(self, status: Status) -> None:
        self.reports.append(status)

    def unacknowledged(self, status: Status) -> bool:
        return (status.event_id, status.seq) not in self.stored
