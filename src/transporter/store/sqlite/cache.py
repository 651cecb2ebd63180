"""What the SQLite store keeps decoded of its events."""

from __future__ import annotations

from transporter.protocol.model import Event
from transporter.store.cache import RECENT_SIZE, RECENT_WEIGHT, Decoded, Recent
from transporter.store.event_parts import Progress, manifest_bytes, stored_event


class EventCache:
    """Events and progress decoded lately, by event id; used only from the store's one worker
    thread.

    Events never change once stored, so an event found here is always right (whichever process
    wrote the file). Progress does change: it is kept with the text it was decoded from, and
    used only when the text just read is that same text.
    """

    def __init__(
        self,
        size: int = RECENT_SIZE,
        progress_size: int = RECENT_SIZE,
        manifest_bytes: int = RECENT_WEIGHT,
    ) -> None:
        # Events weigh their manifests' characters (an event may hold megabytes).
        self.events: Recent[Event] = Recent(size=size, weight=manifest_bytes)
        # Enough for the events a busy control plane has under way.
        self._progress = Decoded(Progress, size=progress_size)

    def get(self, event_id: str) -> Event | None:
        return self.events.get(event_id)

    def put(self, event: Event) -> Event:
        """Keep ``event`` (one larger than the whole budget is not kept); returns it."""
        self.events.put(event.id, event, manifest_bytes(event))
        return event

    def read(self, event_id: str, text: str) -> Event:
        """The event of row ``event_id``, stored as ``text`` (:func:`stored_event`)."""
        return self.put(stored_event(event_id, text))

    def progress(self, event_id: str, text: str) -> Progress:
        """``text`` (an event's stored progress) decoded: from here when it was lately."""
        return self._progress.load(event_id, text)

    def wrote(self, event_id: str, text: str, progress: Progress) -> None:
        """``progress`` was stored as ``text`` (in the transaction under way)."""
        self._progress.wrote(event_id, text, progress)
