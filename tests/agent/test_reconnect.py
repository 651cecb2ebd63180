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
    outages.up(-1.0, "site-1", 5.0)
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
    assert outages.up(10.0, "site-1", 5.0).message.startswith("registered")
    line, delay = outages.down(11.0, "closed")
    assert delay <= 1.0 and "reconnecting with backoff" in line.message
    assert outages.up(12.0, "site-1", 5.0).message.startswith("reconnected")


def test_the_first_connection_is_a_registration() -> None:
    outages = Outages("wss://cp/ws", Backoff(), random.Random(0))
    line = outages.up(0.0, "site-1", 5.0)
    assert line.message == "registered with wss://cp/ws as site-1 (heartbeat every 5 s)"
    # Also when dials failed before it (the control plane, or a replica, was not up yet).
    outages = Outages(("wss://cp-1/ws", "wss://cp-2/ws"), Backoff(), random.Random(0))
    outages.down(0.0, "refused")
    line = outages.up(0.0, "site-1", 5.0)
    assert line.message == "registered with wss://cp-2/ws as site-1 (heartbeat every 5 s)"


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


REPLICAS = ("wss://cp-1/ws", "wss://cp-2/ws", "wss://cp-3/ws")


def test_a_failed_dial_moves_to_the_next_url_at_once_and_a_round_waits() -> None:
    outages = Outages(REPLICAS, Backoff(first=1.0, cap=1000.0), random.Random(5))
    assert outages.cp_url == "wss://cp-1/ws"  # the first given is dialled first
    dialled, delays = [], []
    for n in range(9):
        dialled.append(outages.cp_url)
        delays.append(outages.down(float(n), "refused")[1])
    assert dialled == [*REPLICAS, *REPLICAS, *REPLICAS]
    # A dead replica costs no wait; a round over all of them does, and it grows.
    assert delays[0] == delays[1] == delays[3] == delays[4] == 0.0
    assert 0.5 <= delays[2] <= 1.0 and 1.0 <= delays[5] <= 2.0 and 2.0 <= delays[8] <= 4.0


def test_a_connection_that_ends_moves_to_the_next_replica_after_a_jittered_wait() -> None:
    outages = Outages(REPLICAS, Backoff(first=1.0, cap=1000.0), random.Random(9))
    outages.up(-1.0, "site-1", 5.0)
    outages.down(0.0, "the connection broke")
    for n in range(1, 5):  # a long outage first: the backoff has grown
        outages.down(float(n), "refused")
    assert outages.cp_url == "wss://cp-3/ws"
    assert outages.up(6.0, "site-1", 5.0).message == "reconnected to wss://cp-3/ws after 6.0 s"
    line, delay = outages.down(7.0, "the connection broke")
    # The replica is likely dead: the next, after the first delay, drawn (so the agents of a
    # dead replica do not reach the others all at once), not the grown one.
    assert outages.cp_url == "wss://cp-1/ws"
    assert 0.5 <= delay <= 1.0
    assert line.message == (
        "control plane wss://cp-3/ws: the connection broke; reconnecting with backoff"
        " (next: wss://cp-1/ws)"
    )
    assert outages.down(8.0, "refused")[1] == 0.0  # cp-1 is dead too: cp-2 at once
    assert outages.up(8.0, "site-1", 5.0).message == "reconnected to wss://cp-2/ws after 1.0 s"


def test_each_replica_failing_is_said_once_per_outage_and_reason() -> None:
    outages = Outages(REPLICAS[:2], Backoff(), random.Random(2))
    levels = [outages.down(float(n), "refused")[0].level for n in range(6)]
    # cp-1 starts the outage, cp-2 is new to it; then each says the same again: debug.
    assert levels == [logging.WARNING, logging.WARNING, *[logging.DEBUG] * 4]
    line, _ = outages.down(6.0, "refused with HTTP 403")
    assert line.level == logging.WARNING
    assert line.message == "control plane wss://cp-1/ws still unreachable: refused with HTTP 403"


def test_one_url_is_dialled_again_after_each_failure_with_the_backoff() -> None:
    """A single URL (maybe behind a load balancer) is a round of one: as before replicas."""
    outages = Outages(("wss://lb/ws",), Backoff(first=1.0, cap=1000.0), random.Random(4))
    delays = [outages.down(float(n), "refused")[1] for n in range(4)]
    assert outages.cp_url == "wss://lb/ws"
    assert [d > 0 for d in delays] == [True] * 4 and delays[3] >= 4.0
