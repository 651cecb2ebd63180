"""Dialling again after an outage: jittered backoff, one log line per outage, and what the
line says (:mod:`transporter.agent.reconnect`, :func:`transporter.agent.session._describe`)."""

from __future__ import annotations

import logging
import random

from transporter.agent.dial import ChannelClosed
from transporter.agent.reconnect import Backoff, Outages
from transporter.agent.session import _describe


def test_delays_double_up_to_the_cap_each_drawn_between_half_and_all() -> None:
    backoff, rng = Backoff(first=1.0, cap=8.0), random.Random(7)
    for attempt, ceiling in enumerate([1, 2, 4, 8, 8, 8]):
        for _ in range(50):
            assert ceiling / 2 <= backoff.delay(attempt, rng) <= ceiling
    assert backoff.delay(10_000, rng) <= 8.0  # no overflow, however long the outage


def test_an_outage_is_said_once_and_again_only_when_its_reason_changes() -> None:
    outages = Outages("wss://cp:8443/ws", Backoff(first=1.0, cap=60.0), random.Random(1))
    first, _ = outages.down(0.0, "refused")
    assert first.level == logging.WARNING and "reconnecting with backoff" in first.message
    same, _ = outages.down(1.0, "refused")
    assert same.level == logging.DEBUG
    changed, _ = outages.down(2.0, "refused with HTTP 403")
    assert changed.level == logging.WARNING and "still unreachable" in changed.message
    back = outages.up(12.5, "site-1", 5.0)
    assert back.message == "reconnected to wss://cp:8443/ws after 12.5 s"


def test_the_backoff_grows_during_an_outage_and_starts_over_after_a_connection() -> None:
    outages = Outages("wss://cp/ws", Backoff(first=1.0, cap=1000.0), random.Random(3))
    delays = [outages.down(float(n), "refused")[1] for n in range(8)]
    assert delays[-1] >= 64  # 2**7 / 2 at least
    assert outages.up(10.0, "site-1", 5.0).message.startswith("reconnected")
    line, delay = outages.down(11.0, "closed")
    assert delay <= 1.0 and "reconnecting with backoff" in line.message
    assert outages.up(12.0, "site-1", 5.0).message.startswith("reconnected")


def test_the_first_connection_is_a_registration() -> None:
    outages = Outages("wss://cp/ws", Backoff(), random.Random(0))
    line = outages.up(0.0, "site-1", 5.0)
    assert line.message == "registered with wss://cp/ws as site-1 (heartbeat every 5 s)"


def test_an_outage_is_described_by_its_innermost_error() -> None:
    nested = ExceptionGroup(
        "outer", [ExceptionGroup("inner", [ConnectionRefusedError(111, "refused")])]
    )
    assert _describe(nested) == "ConnectionRefusedError: [Errno 111] refused"
    # Two tasks failed at once as the connection broke: the first says what happened.
    both = ExceptionGroup("nursery", [BrokenPipeError(32, "broken"), TimeoutError()])
    assert _describe(ExceptionGroup("outer", [both])) == "BrokenPipeError: [Errno 32] broken"
    # The channel's own errors say it all, without their type.
    closed = ChannelClosed("the control plane closed the connection (1001)")
    assert _describe(ExceptionGroup("outer", [closed])) == str(closed)
