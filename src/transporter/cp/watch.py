"""Wake HTTP requests that wait for an event to change (``GET /events/{id}?wait=``)."""

from __future__ import annotations

import trio


class EventWatch:
    """Per-event wake-ups. Holds an entry only while someone waits on that event."""

    def __init__(self) -> None:
        self._waiting: dict[str, tuple[trio.Event, int]] = {}

    def changed(self, event_id: str) -> None:
        entry = self._waiting.pop(event_id, None)
        if entry is not None:
            entry[0].set()

    async def wait(self, event_id: str) -> None:
        """Return when ``event_id`` changes. Bound it with a cancel scope."""
        event, count = self._waiting.get(event_id, (trio.Event(), 0))
        self._waiting[event_id] = (event, count + 1)
        try:
            await event.wait()
        finally:
            current = self._waiting.get(event_id)
            if current is not None and current[0] is event:
                if current[1] <= 1:
                    del self._waiting[event_id]
                else:
                    self._waiting[event_id] = (event, current[1] - 1)
