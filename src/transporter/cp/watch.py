"""Wake HTTP requests that wait for an event to change (``GET /events/{id}?wait=``), with the
record as it was written, so that they need not read it again.

A request subscribes *before* it reads the event, and stays subscribed until it answers: a
change that lands between its read and its wait, or while it looks at a record it was woken
with, is never lost.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import trio

from transporter.protocol.model import EventRecord


class Subscription:
    """One request's interest in one event."""

    def __init__(self) -> None:
        self._woken = trio.Event()
        self._record: EventRecord | None = None

    def _changed(self, record: EventRecord | None) -> None:
        self._record = record
        self._woken.set()

    async def next(self) -> EventRecord | None:
        """Return once the event changed since the last call (at once if it already has): the
        record last written, or ``None`` when the writer did not give it (read it again).
        Bound it with a cancel scope."""
        await self._woken.wait()
        self._woken = trio.Event()
        record, self._record = self._record, None
        return record


class EventWatch:
    """Per-event subscriptions. Holds an entry only while someone is subscribed."""

    def __init__(self) -> None:
        self._subscribed: dict[str, set[Subscription]] = {}

    def changed(self, event_id: str, record: EventRecord | None = None) -> None:
        """``event_id`` changed; ``record`` is what was written (``None``: read it again)."""
        for subscription in self._subscribed.get(event_id, ()):
            subscription._changed(record)

    def changed_all(self) -> None:
        """Anything may have changed (changes of other replicas may have been missed)."""
        for event_id in list(self._subscribed):
            self.changed(event_id)

    @contextmanager
    def watching(self, event_id: str) -> Iterator[Subscription]:
        subscription = Subscription()
        self._subscribed.setdefault(event_id, set()).add(subscription)
        try:
            yield subscription
        finally:
            subscribers = self._subscribed[event_id]
            subscribers.discard(subscription)
            if not subscribers:
                del self._subscribed[event_id]
