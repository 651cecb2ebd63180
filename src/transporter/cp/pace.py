"""The heartbeat budget kept as the fleet grows: agents welcomed when it was smaller are told a
longer interval (protocol 4: a ``pace`` message).

Each agent is told at its welcome the interval at which the whole fleet sends the budget's
heartbeats (:meth:`~.agent_link.LinkSettings.interval_for`). A fleet that grows from nothing (a
first start, 10,000 agents dialling at once) would otherwise keep the first agents' short
intervals until they reconnect: twice the budget at rest. One task looks every least interval
and paces those behind by more than :data:`STEP`.
"""

from __future__ import annotations

import contextlib
import logging

import trio

from transporter.cp.agent_link import LinkSettings
from transporter.cp.framing import Closed
from transporter.cp.live import LiveAgents
from transporter.protocol.messages import PINGS, Pace

log = logging.getLogger(__name__)

STEP = 1.1
"""An agent is paced when the fleet's interval is this many times its own or more (not at
each agent more). At 1.25, agents paced at 8,000 stayed a hair under the step at 10,000: 9.4-9.6 %
of a core at rest against 8.3-9.1 % for all at the fleet's interval."""
SEND_TIMEOUT = 1.0
"""Seconds a ``pace`` may take to send; a connection that does not take it keeps its pace."""


async def keep_pace(live: LiveAgents, settings: LinkSettings) -> None:
    """Every least interval, lengthen the intervals that the fleet has outgrown; runs until
    cancelled."""
    while True:
        await trio.sleep(settings.heartbeat_interval)
        target = settings.interval_for(live.fleet)
        behind = [
            connection
            for connection in live.all()
            if connection.protocol >= PINGS
            and connection.heartbeat_interval > 0
            and connection.heartbeat_interval * STEP <= target
        ]
        if behind:
            log.info("%d agents paced to a heartbeat every %.1f s", len(behind), target)
        for connection in behind:
            connection.heartbeat_interval = target  # judged by it from now: longer is safe
            pace = Pace(target, target * settings.dead_heartbeats)
            gone = (Closed, trio.BrokenResourceError, trio.ClosedResourceError)
            with contextlib.suppress(*gone), trio.move_on_after(SEND_TIMEOUT):
                await connection.send(pace)
