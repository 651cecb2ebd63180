"""What is in flight to one agent: the one object that says which events were sent on a
connection and are not finished, and which of them the agent has not acknowledged yet."""

from __future__ import annotations

from collections.abc import Iterable, Iterator


class DeliveryWindow:
    """At most ``size`` events in flight on one connection. Times are the caller's clock
    (``trio.current_time()``); nothing here waits or does I/O."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._flight: dict[str, float | None] = {}
        """In flight, each with when it was sent while unacknowledged (``None`` once it is):
        one dict, which costs an idle connection 64 bytes (a set and a dict cost 280)."""

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._flight

    def __len__(self) -> int:
        return len(self._flight)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._flight))

    @property
    def room(self) -> int:
        return self.size - len(self._flight)

    def sending(self, event_id: str, now: float) -> None:
        self._flight[event_id] = now

    def acknowledged(self, event_id: str) -> None:
        if event_id in self._flight:
            self._flight[event_id] = None

    def waiting_for_ack(self, event_id: str) -> bool:
        return self._flight.get(event_id) is not None

    def finished(self, event_id: str) -> bool:
        return self._flight.pop(event_id, False) is not False

    def due(self, now: float, ack_timeout: float) -> list[str]:
        overdue = [
            (sent, e)
            for e, sent in self._flight.items()
            if sent is not None and now - sent >= ack_timeout
        ]
        return [event_id for _, event_id in sorted(overdue)]

    def next_due(self, ack_timeout: float) -> float | None:
        """When the oldest unacknowledged event is due again (``None``: none is waiting)."""
        sent = [at for at in self._flight.values() if at is not None]
        return min(sent) + ack_timeout if sent else None

    def keep_only(self, alive: Iterable[str]) -> None:
        """Forget what is no longer unfinished (ended by another replica, say)."""
        kept = set(alive)
        for gone in self._flight.keys() - kept:
            del self._flight[gone]
