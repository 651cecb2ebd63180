"""Queue mode's part of the :class:`~transporter.store.base.Store` boundary: submissions that
producers append to a Redis Stream, which control-plane replicas consume through one consumer
group (``cp``), and the dead-letter stream where refused entries end with their error.

Only the Redis store has it: the embedded store answers every call with
:class:`~transporter.store.base.QueueUnsupported` (one process, no shared server a producer
could append to). This module imports nothing of the store's (``base`` imports it)."""

from __future__ import annotations

from typing import Protocol

import attrs


@attrs.frozen
class QueueEntry:
    """One entry of the queue as a consumer read it: its stream id and its fields, as they came
    (hostile until checked: any producer that may XADD wrote them)."""

    entry_id: str
    fields: dict[str, str]
    deliveries: int = 1
    """How many times the group gave the entry to a consumer, this time included (a claimed
    entry's count goes up: one that keeps failing is given up on)."""


@attrs.frozen(kw_only=True)
class DeadLetter:
    """A refused entry: why, as the API would have answered, and whose. Never the token: its
    id only, so the dead-letter stream is safe to show its owner."""

    letter_id: str = ""
    """Its id in the dead-letter stream (set when read; the cursor of a page)."""
    entry_id: str
    """The refused entry's id in the queue (it is deleted from there)."""
    at: float
    status: int
    """The HTTP status the API would have answered (400, 401, 403, 409, 413 …)."""
    error: str
    message: str
    field: str | None = None
    event_id: str | None = None
    """The id of the event (or rollout) the entry was for, when it named one."""
    token_id: str | None = None
    """The id part of the entry's token (``tpt_<id>_…``), when it had one of that shape."""


@attrs.frozen
class DeadLetterPage:
    items: list[DeadLetter]
    cursor: str | None
    """Pass back to get the next page; ``None`` when there is no more."""


class QueueStore(Protocol):
    """The queue as the control plane consumes it (see :mod:`transporter.cp.queue`)."""

    async def queue_prepare(self) -> None:
        """Make the queue and its consumer group if they are not there yet (every replica does
        at start; the group reads from the queue's first entry, so entries appended before any
        control plane ever started are taken too)."""
        ...

    async def queue_read(self, consumer: str, *, count: int, block: float) -> list[QueueEntry]:
        """Up to ``count`` entries no consumer was given yet, now ``consumer``'s to settle;
        waits up to ``block`` seconds for one (less than the store's call timeout)."""
        ...

    async def queue_claim(self, consumer: str, *, idle: float, count: int) -> list[QueueEntry]:
        """Entries given to a consumer that has not settled them for ``idle`` seconds (it died,
        or the store failed under it): now ``consumer``'s. At most ``count``."""
        ...

    async def queue_forget(self, *, idle: float) -> int:
        """Remove the consumers that hold no entry and did nothing for ``idle`` seconds
        (replicas that are gone: each process is a new consumer); how many. One that holds
        an entry is kept, whatever its age (its entries are claimed, not dropped)."""
        ...

    async def queue_done(self, entry_id: str) -> None:
        """Settle an entry whose event is stored: acknowledged and deleted (its token does not
        stay in Redis), at once."""
        ...

    async def queue_dead(self, entry_id: str, letter: DeadLetter) -> None:
        """Settle a refused entry: ``letter`` appended to the dead-letter stream, the entry
        acknowledged and deleted, at once."""
        ...

    async def dead_letters(
        self, *, limit: int = 100, cursor: str | None = None, token_id: str | None = None
    ) -> DeadLetterPage:
        """Dead letters, newest first; ``token_id``: only those of that token. A page holds at
        most ``limit`` and may hold fewer (a token's are filtered from a page of all)."""
        ...

    async def dead_letter_of(
        self, entry_id: str, *, token_id: str | None = None
    ) -> DeadLetter | None:
        """The dead letter of the queue's entry ``entry_id``, if it has one (``token_id``: only
        if it is that token's): what a producer following its entry looks up."""
        ...
