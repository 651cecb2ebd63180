"""What stores an event sent as it is accepted (:meth:`~.base.EventStore.submit_many`)."""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from transporter.protocol.model import AuditEntry
from transporter.protocol.status import StatusUpdate


@attrs.frozen
class Sending:
    """A new event to be stored as sent to its agent's connection, which has read its agent's
    events up to ``seq`` :attr:`after` and sent them (:meth:`EventStore.submit_many`): the
    control plane then sends it without reading it back, and no later write records it sent.

    Only when the agent has nothing unfinished after :attr:`after`, checked in the write: the
    new event is then the next to send, in order; a cancel finds it sent (not ``queued``), as
    it finds every event sent. Else the event is stored as any other (``queued``): the
    record returned says which, and its delivery's audit entry follows its own when sent."""

    after: int
    update: StatusUpdate
    """The ``assigned`` update (:meth:`EventStore.update_event`'s) made in the same write."""
    audit: AuditEntry
    """Its ``event.delivered`` entry, appended after the event's own."""


def each_item[T](values: Sequence[T | None], items: int) -> list[T | None]:
    """``submit_many``'s ``sending`` or ``tokens``, one per item (``None`` for those it does
    not reach)."""
    return [*values, *[None] * (items - len(values))]
