"""Ending events whose TTL passed before they finished."""

from __future__ import annotations

import logging
import time

import trio

from transporter.cp.progress import Progress
from transporter.protocol.model import EventState
from transporter.protocol.status import StatusUpdate
from transporter.store.base import Store, StoreUnavailable

log = logging.getLogger(__name__)

INTERVAL = 1.0
"""Seconds between looks for events whose TTL passed."""


async def expire_forever(store: Store, progress: Progress, *, interval: float = INTERVAL) -> None:
    """End events whose TTL passed; a store outage pauses this, it never ends it."""
    outage = False
    while True:
        try:
            await expire(store, progress, time.time())
        except StoreUnavailable as exc:
            if not outage:
                log.warning("expiry paused: %s", exc)
            outage = True
        else:
            if outage:
                log.info("expiry resumed: the store answers again")
            outage = False
        await trio.sleep(interval)


async def expire(store: Store, progress: Progress, now: float) -> None:
    for event_id in await store.expiring(now):
        record = await store.get_event(event_id)
        if record is None:
            continue
        await progress.update(
            event_id,
            record.event.target_agent,
            StatusUpdate(
                at=now, state=EventState.EXPIRED, message="TTL passed before the event finished"
            ),
        )
