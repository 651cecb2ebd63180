"""Whether an agent's connection is alive: one task looks at all of them, a quarter heartbeat
apart. Silent for ``missed_heartbeats`` of its intervals (each agent's, told in its welcome),
an agent is ``unhealthy``; silent for ``dead_heartbeats``, its connection is taken for dead
(a half-open TCP connection never ends by itself) and closed; a connection whose certificate
expired is closed too (checked at the handshake, but a connection may outlive it)."""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Awaitable, Callable

import trio

from transporter.cp.live import Connection, LiveAgents
from transporter.logs import about
from transporter.protocol.model import AgentStatus, AuditEntry

log = logging.getLogger(__name__)


class Verdict(enum.Enum):
    FINE = "fine"
    UNHEALTHY = "unhealthy"
    DEAD = "dead"
    EXPIRED = "expired"


def verdict(connection: Connection, now: float, *, unhealthy: float, dead: float) -> Verdict:
    """What to do about ``connection`` at ``now``: silence after ``unhealthy`` seconds, after
    ``dead`` seconds, or a certificate past its end. Pure."""
    certificate = connection.certificate
    if certificate is not None and certificate.not_after <= now:
        return Verdict.EXPIRED
    silent = now - connection.last_heard
    if silent >= dead:
        return Verdict.DEAD
    if silent >= unhealthy and connection.status is AgentStatus.CONNECTED:
        return Verdict.UNHEALTHY
    return Verdict.FINE


async def watch_health(
    live: LiveAgents,
    *,
    interval: float,
    missed: int,
    dead: int,
    save_status: Callable[[Connection], Awaitable[None]],
    audit: Callable[[AuditEntry], Awaitable[None]],
) -> None:
    """Act on each connection's :func:`verdict` every quarter ``interval`` (the least): an
    agent is unhealthy after ``missed`` of its own intervals (told in its welcome) and dead
    after ``dead``; runs until cancelled. ``save_status`` stores an agent's new status;
    ``audit`` writes an entry (both survive an outage of the store themselves)."""
    while True:
        now = time.time()
        turned: list[Connection] = []
        for connection in live.all():
            if connection.cancel_scope.cancel_called:
                continue
            beat = connection.heartbeat_interval or interval
            found = verdict(connection, now, unhealthy=beat * missed, dead=beat * dead)
            if found is Verdict.EXPIRED:
                log.warning(
                    "agent %s: its certificate expired; closing its connection",
                    connection.agent_id,
                    extra=about(agent_id=connection.agent_id),
                )
                connection.cancel_scope.cancel()
                assert connection.certificate is not None
                await audit(
                    AuditEntry(
                        at=now,
                        action="agent.expired",
                        agent_id=connection.agent_id,
                        detail=f"certificate serial {connection.certificate.serial} expired;"
                        " connection closed",
                    )
                )
            elif found is Verdict.DEAD:
                log.warning(
                    "agent %s: nothing heard for %.1f s; closing its connection as dead",
                    connection.agent_id,
                    now - connection.last_heard,
                    extra=about(agent_id=connection.agent_id),
                )
                connection.cancel_scope.cancel()
            elif found is Verdict.UNHEALTHY:
                connection.status = AgentStatus.UNHEALTHY
                silent = now - connection.last_heard
                log.warning(
                    "agent %s: nothing heard for %.1f s",
                    connection.agent_id,
                    silent,
                    extra=about(agent_id=connection.agent_id),
                )
                turned.append(connection)
        async with trio.open_nursery() as nursery:  # saved at once: written together
            for connection in turned:
                nursery.start_soon(save_status, connection)
        await trio.sleep(interval / 4)
