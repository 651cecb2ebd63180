"""What is in flight to one agent: the one object that says which events were sent on a
connection and are not finished, and which of them the agent has not acknowledged yet."""

from __future__ import annotations

from collections.abc import Iterable, Iterator


class DeliveryWindow:
    """At most ``size`` events in flight on one connection. Times are the caller's clock
    (``trio.current_time()``); nothing here waits or does I/O."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._in_flight: set[str] = set()
        self._unacked: dict[str, float] = {}
        """Sent and not acknowledged, with when it was last sent; a subset of in flight."""

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._in_flight

    def __len__(self) -> int:
        return len(self._in_flight)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._in_flight))

    @property
    def room(self) -> int:
        """How many more events may be sent now."""
        return self.size - len(self._in_flight)

    def sending(self, event_id: str, now: float) -> None:
        """``event_id`` goes out now (again, maybe): in flight, unacknowledged from ``now``."""
        self._in_flight.add(event_id)
        self._unacked[event_id] = now

    def acknowledged(self, event_id: str) -> None:
        """The agent has ``event_id`` (it said ``received``, or reported on it)."""
        self._unacked.pop(event_id, None)

    def waiting_for_ack(self, event_id: str) -> bool:
        return event_id in self._unacked

    def finished(self, event_id: str) -> bool:
        """``event_id`` ended: its slot is free. Whether it was in flight here."""
        self._unacked.pop(event_id, None)
        if event_id in self._in_flight:
            self._in_flight.discard(event_id)
            return True
        return False

    def due(self, now: float, ack_timeout: float) -> list[str]:
        """The unacknowledged events whose acknowledgement is overdue, oldest first."""
        overdue = [(sent, e) for e, sent in self._unacked.items() if now - sent >= ack_timeout]
        return [event_id for _, event_id in sorted(overdue)]

    def next_due(self, ack_timeout: float) -> float | None:
        """When the oldest unacknowledged event is due again (``None``: none is waiting)."""
        return min(self._unacked.values()) + ack_timeout if self._unacked else None

    def keep_only(self, alive: Iterable[str]) -> None:
        """Forget what is no longer unfinished (ended by another replica, say)."""
        kept = set(alive)
        self._in_flight &= kept
        for gone in self._unacked.keys() - kept:
            del self._unacked[gone]
