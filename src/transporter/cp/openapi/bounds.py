"""Bounds of the API's queries, named once: the routes check them and the document states them.

The bounds of a submission come from its validator (:mod:`transporter.protocol.submission`).
"""

from __future__ import annotations

from typing import Final

from transporter.protocol.rollout_request import MAX_WAVES
from transporter.protocol.submission import MAX_CREATED_BY, MAX_PRIORITY, MIN_PRIORITY

__all__ = [
    "AUDIT_PAGE",
    "DEAD_LETTERS_PAGE",
    "EVENTS_PAGE",
    "MAX_CREATED_BY",
    "MAX_PLAN_CLUSTERS",
    "MAX_PRIORITY",
    "MAX_SINCE",
    "MAX_WAVE",
    "MIN_PRIORITY",
    "ROLLOUTS_LIMIT",
    "ROLLOUTS_PAGE",
]

MAX_SINCE: Final = 1_000_000
"""``GET /events/{event_id}?since=``."""
EVENTS_PAGE: Final = 50
"""Default ``limit`` of ``GET /events``."""
AUDIT_PAGE: Final = 100
"""Default ``limit`` of ``GET /audit``."""
DEAD_LETTERS_PAGE: Final = 100
"""Default ``limit`` of ``GET /queue/dead-letters``."""
ROLLOUTS_PAGE: Final = 50
"""Default ``limit`` of ``GET /rollouts`` and ``GET /plans``."""
ROLLOUTS_LIMIT: Final = 100
"""Largest ``limit`` there: a summary names up to 1000 agents."""
MAX_PLAN_CLUSTERS: Final = 100
"""Clusters whose results one ``GET /plans/{plan_id}`` shows (the first, in the plan's order;
``?agent=`` for any other): each may report thousands of objects with their changes."""
MAX_WAVE: Final = MAX_WAVES
"""The highest index a wave can have: the strategy's, and one more for the clusters that matched
none of them."""
