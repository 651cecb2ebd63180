"""An event's record on Redis, from its two parts: the event and its numbered progress."""

from __future__ import annotations

import attrs

from transporter.protocol.model import Event, EventRecord
from transporter.store.base import StoreError
from transporter.store.cache import Decoded
from transporter.store.event_parts import Progress, progress_fields, stored_event


@attrs.frozen
class NumberedProgress(Progress):
    """An event's progress with its ``seq``: the scripts that move an event between indexes
    need the seq, and the event and this make its whole record."""

    seq: int = 0

    @classmethod
    def of(cls, record: EventRecord) -> NumberedProgress:
        return cls(*progress_fields(record), record.seq)

    def whole(self, event: Event) -> EventRecord:
        return self.record(event, self.seq)


class EventTexts(Decoded[Event]):
    """Events decoded lately, each used again only for the text it was read as: whoever may
    write to Redis may change an event, and its agent must then be sent what is stored (and
    refuse it). A progress report uses the one last read (:meth:`last`) and reads none."""

    def __init__(self) -> None:
        super().__init__(Event)

    def decode(self, key: str, text: str) -> Event:
        return stored_event(key, text)


class RecordTexts:
    """Records decoded from their parts' texts, each part reused while its text is the same."""

    def __init__(self) -> None:
        self.events = EventTexts()
        self.progress = Decoded(NumberedProgress)

    def record(self, event_id: str, progress: str, event: str | None) -> EventRecord:
        if event is None:
            raise StoreError(f"event {event_id!r} has progress but no event in Redis")
        return self.progress.load(event_id, progress).whole(self.events.load(event_id, event))
