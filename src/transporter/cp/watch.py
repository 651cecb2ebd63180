"""Wake HTTP requests that wait for an event to change (``GET /events/{id}?wait=``), with the
record as it was written, so that they need not read it again."""

from __future__ import annotations

import attrs
import trio

from transporter.protocol.model import EventRecord


@attrs.define(eq=False)
class _Waiting:
    woken: trio.Event = attrs.field(factory=trio.Event)
    record: EventRecord | None = None


class EventWatch:
    """Per-event wake-ups. Holds an entry only while someone waits on that event."""

    def __init__(self) -> None:
        self._waiting: dict[str, tuple[_Waiting, int]] = {}

    def changed(self, event_id: str, record: EventRecord | None = None) -> None:
        """``event_id`` changed; ``record`` is what was written (``None``: read it again)."""
        entry = self._waiting.pop(event_id, None)
        if entry is not None:
            entry[0].record = record
            entry[0].woken.set()

    async def wait(self, event_id: str) -> EventRecord | None:
        """Return when ``event_id`` changes: the record written, when the writer gave it.
        Bound it with a cancel scope."""
        event, count = self._waiting.get(event_id, (_Waiting(), 0))
        self._waiting[event_id] = (event, count + 1)
        try:
            await event.woken.wait()
            return event.record
        finally:
            current = self._waiting.get(event_id)
            if current is not None and current[0] is event:
                if current[1] <= 1:
                    del self._waiting[event_id]
                else:
                    self._waiting[event_id] = (event, current[1] - 1)
