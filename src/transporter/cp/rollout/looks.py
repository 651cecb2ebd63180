"""The periodic look's shortcut: a rollout whose last step here changed nothing, and whose
children's progress is still what that step read, would be stepped to the same nothing again,
so its record (and spec: megabytes of manifests, for a store whose cache they outgrow) is not
read again.

Why that holds: a step decides from the record, the children and the clock, and the clock
matters only for a pause (a record with ``resume_at`` is never remembered) and for children
started (a step that started none had no room or no turn, which only a child's change gives).
Whatever changes the record here forgets it (:meth:`Looks.forget`); a change stored by another
replica is stepped by that replica, and seen here at the latest :data:`FULL_LOOK` seconds later
(a replica that died between saving a change and stepping it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import attrs
import trio

from transporter.protocol.rollout import RolloutRecord
from transporter.store.base import EventProgress

FULL_LOOK: Final = 30.0
"""Seconds after which a remembered look no longer stands in for reading the record."""
REMEMBERED: Final = 1024
"""Rollouts remembered at most (past it, all are forgotten)."""


@attrs.frozen
class Look:
    record: RolloutRecord
    children: tuple[EventProgress | None, ...]
    until: float

    @property
    def event_ids(self) -> list[str]:
        return [cluster.event_id for cluster in self.record.clusters]


@attrs.define
class Looks:
    full_look: float = FULL_LOOK
    _last: dict[str, Look] = attrs.field(factory=dict)

    def remember(self, record: RolloutRecord, children: Sequence[EventProgress | None]) -> None:
        """A step of ``record`` read ``children`` and changed nothing."""
        if record.resume_at is not None:
            self.forget(record.spec.id)
            return
        if len(self._last) >= REMEMBERED:
            self._last.clear()
        until = trio.current_time() + self.full_look
        self._last[record.spec.id] = Look(record, tuple(children), until)

    def forget(self, rollout_id: str) -> None:
        self._last.pop(rollout_id, None)

    def recent(self, rollout_id: str) -> Look | None:
        """The look to compare the children with, if one stands (else read the record)."""
        look = self._last.get(rollout_id)
        if look is not None and trio.current_time() >= look.until:
            self.forget(rollout_id)
            return None
        return look
