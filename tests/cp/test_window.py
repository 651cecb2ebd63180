"""What is in flight to one agent (:class:`transporter.cp.window.DeliveryWindow`)."""

from __future__ import annotations

from transporter.cp.window import DeliveryWindow


def test_the_window_bounds_what_is_in_flight_and_a_finished_event_frees_its_slot() -> None:
    window = DeliveryWindow(2)
    window.sending("ev-1", 0.0)
    window.sending("ev-2", 0.0)
    assert window.room == 0 and len(window) == 2
    window.acknowledged("ev-1")  # received: still in flight until it ends
    assert window.room == 0
    assert window.finished("ev-1") is True
    assert window.room == 1 and "ev-1" not in window
    assert window.finished("ev-1") is False  # ended twice (another replica, say): no slot freed


def test_overdue_acknowledgements_come_oldest_first_and_a_resend_starts_the_clock_again() -> None:
    window = DeliveryWindow(8)
    window.sending("ev-late", 5.0)
    window.sending("ev-early", 1.0)
    window.sending("ev-new", 9.0)
    assert window.next_due(3.0) == 4.0
    assert window.due(8.0, 3.0) == ["ev-early", "ev-late"]
    window.sending("ev-early", 8.0)  # sent again
    assert window.due(8.0, 3.0) == ["ev-late"]
    window.acknowledged("ev-late")
    assert window.due(20.0, 3.0) == ["ev-early", "ev-new"]
    for event_id in ("ev-new", "ev-early"):
        window.acknowledged(event_id)
    assert window.next_due(3.0) is None and window.due(100.0, 3.0) == []


def test_what_ended_elsewhere_is_forgotten() -> None:
    window = DeliveryWindow(8)
    for event_id in ("ev-1", "ev-2", "ev-3"):
        window.sending(event_id, 0.0)
    window.keep_only(["ev-2", "ev-9"])
    assert list(window) == ["ev-2"]
    assert window.due(100.0, 1.0) == ["ev-2"]
    assert window.room == 7
