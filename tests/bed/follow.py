"""Following events to their end through the API's long poll (``?wait=&since=``)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from tests.bed.producer import ApiAccess, call

TERMINAL = {"completed", "failed", "expired"}
LONG_POLL = 20.0


def final_record(api: ApiAccess, event_id: str, *, deadline: float) -> dict[str, Any] | None:
    """The event's record once it has ended, or as it stands at ``deadline`` (monotonic);
    ``None`` when the control plane does not know the event."""
    since = 0
    while True:
        wait = max(0.0, min(LONG_POLL, deadline - time.monotonic()))
        path = f"/events/{quote(event_id, safe='')}?wait={wait:.1f}&since={since}"
        status, record = call(api, "GET", path, timeout=wait + 30)
        if status == 404:
            return None
        if status != 200:
            raise RuntimeError(f"GET {path}: {status} {record}")
        if record["state"] in TERMINAL or time.monotonic() >= deadline:
            return dict(record)
        since = len(record["timeline"])


def final_records(
    api: ApiAccess, event_ids: Iterable[str], *, timeout: float
) -> dict[str, dict[str, Any] | None]:
    """:func:`final_record` of each event, all within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    return {event_id: final_record(api, event_id, deadline=deadline) for event_id in event_ids}


def not_completed(records: dict[str, dict[str, Any] | None]) -> list[str]:
    """One line per event that did not complete: unknown to the store, unfinished or failed."""
    lines = []
    for event_id, record in records.items():
        if record is None:
            lines.append(f"{event_id}: unknown to the control plane")
        elif record["state"] != "completed":
            lines.append(f"{event_id}: {record['state']} {record['phase']}: {record['message']}")
    return lines
