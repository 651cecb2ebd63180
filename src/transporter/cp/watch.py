"""Wake HTTP requests that wait for an event to change (``GET /events/{id}?wait=``), with the
record as it was written, so that they need not read it again.

A request subscribes *before* it reads the event, and stays subscribed until it answers: a
change that lands between its read and its wait, or while it looks at a record it was woken
with, is never lost.

Writers tell of their changes after their commits, but not in the order of them: the tasks that
one group commit wakes (an agent's reports, the expiry, a cancel, a lost connection's requeue:
:mod:`transporter.cp.progress`) run in whichever order trio picks, and another replica's hint
(which gives no record: read again) may come before this replica's own notice of an earlier
write. So a subscription never lets the record it holds be replaced by an older one, nor a "read
again" by any record: it wakes with the newest record it was given when that one follows from
all the others (:func:`latest`), else with ``None``. A request that took the older record for
the newest would wait again for a change that was already stored: until the next one, its
``wait``, or (on Redis) the replicas' look.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import trio

from transporter.protocol.model import EventRecord


def latest(one: EventRecord | None, other: EventRecord | None) -> EventRecord | None:
    """The later of two records of one event, when one follows from the other; ``None`` when
    either is ``None`` or neither follows from the other (read it again).

    A timeline only grows (:func:`transporter.protocol.status.advance` appends to it), so the
    later record's timeline begins with the earlier one's. Two of one length that differ (a
    report that changed only the resources, or writes a Redis failover lost) cannot be told
    apart."""
    if one is None or other is None:
        return None
    if one == other:
        return one
    if _follows(other, one):
        return other
    if _follows(one, other):
        return one
    return None


def _follows(later: EventRecord, earlier: EventRecord) -> bool:
    """Whether ``later``'s timeline is ``earlier``'s and more."""
    before = len(earlier.timeline)
    return len(later.timeline) > before and later.timeline[:before] == earlier.timeline


class Subscription:
    """One request's interest in one event."""

    def __init__(self) -> None:
        self._woken = trio.Event()
        self._record: EventRecord | None = None

    def _changed(self, record: EventRecord | None) -> None:
        if self._woken.is_set():  # not taken yet: keep the newest (or read again)
            record = latest(self._record, record)
        self._record = record
        self._woken.set()

    async def next(self) -> EventRecord | None:
        """Return once the event changed since the last call (at once if it already has): the
        newest record written meanwhile, or ``None`` when it must be read again (a writer did
        not give its record, or those given do not tell which is the newest; see
        :func:`latest`). It may be older than a record the caller read meanwhile: keep the
        later one (:func:`latest` again). Bound it with a cancel scope."""
        await self._woken.wait()
        self._woken = trio.Event()
        record, self._record = self._record, None
        return record


class EventWatch:
    """Per-event subscriptions. Holds an entry only while someone is subscribed."""

    def __init__(self) -> None:
        self._subscribed: dict[str, set[Subscription]] = {}

    def changed(self, event_id: str, record: EventRecord | None = None) -> None:
        """``event_id`` changed; ``record`` is what was written (``None``: read it again). Call
        it once the change can be read; the order of the calls does not matter."""
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
