"""Bounds of the API's queries, named once: the routes check them and the document states them.

The bounds of a submission come from its validator (:mod:`transporter.protocol.submission`).
"""

from __future__ import annotations

from typing import Final

from transporter.protocol.submission import MAX_CREATED_BY, MAX_PRIORITY, MIN_PRIORITY

__all__ = [
    "AUDIT_PAGE",
    "EVENTS_PAGE",
    "MAX_CREATED_BY",
    "MAX_PRIORITY",
    "MAX_SINCE",
    "MIN_PRIORITY",
]

MAX_SINCE: Final = 1_000_000
"""``GET /events/{event_id}?since=``."""
EVENTS_PAGE: Final = 50
"""Default ``limit`` of ``GET /events``."""
AUDIT_PAGE: Final = 100
"""Default ``limit`` of ``GET /audit``."""
