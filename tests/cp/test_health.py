"""Whether a connection is alive (:func:`transporter.cp.health.verdict`), from the clock alone."""

from __future__ import annotations

import trio

from transporter.cp.health import Verdict, verdict
from transporter.cp.live import Connection
from transporter.protocol.identity import PeerCertificate
from transporter.protocol.model import AgentInfo, AgentStatus

NOW = 1_800_000_000.0


async def _send(text: str) -> None:
    raise AssertionError("nothing is sent")


def connection(last_heard: float, *, expires: float | None = None) -> Connection:
    certificate = None
    if expires is not None:
        certificate = PeerCertificate("agent-a", "01", "ab" * 32, expires)
    return Connection(
        info=AgentInfo("agent-a"),
        connected_since=NOW - 100,
        sender=_send,
        cancel_scope=trio.CancelScope(),
        last_heard=last_heard,
        certificate=certificate,
    )


def test_silence_makes_an_agent_unhealthy_then_dead() -> None:
    limits = {"unhealthy": 10.0, "dead": 20.0}
    assert verdict(connection(NOW - 9.9), NOW, **limits) is Verdict.FINE
    assert verdict(connection(NOW - 10), NOW, **limits) is Verdict.UNHEALTHY
    assert verdict(connection(NOW - 20), NOW, **limits) is Verdict.DEAD


def test_an_agent_already_unhealthy_is_not_marked_again() -> None:
    quiet = connection(NOW - 15)
    quiet.status = AgentStatus.UNHEALTHY
    assert verdict(quiet, NOW, unhealthy=10.0, dead=20.0) is Verdict.FINE


def test_a_certificate_that_ended_ends_the_connection_however_lively() -> None:
    assert verdict(connection(NOW, expires=NOW), NOW, unhealthy=10, dead=20) is Verdict.EXPIRED
    assert verdict(connection(NOW, expires=NOW + 1), NOW, unhealthy=10, dead=20) is Verdict.FINE
