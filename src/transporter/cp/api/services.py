"""What the HTTP API works with: the control plane's parts it needs, named, and held by the app."""

from __future__ import annotations

import attrs
import trio
from quart import current_app

from transporter.cp.api.views import EventViews
from transporter.cp.intake import Intake
from transporter.cp.live import LiveAgents
from transporter.cp.metrics import CpMetrics
from transporter.cp.progress import Progress
from transporter.cp.replicas import REPLICA_LOOK
from transporter.cp.rollout.engine import Rollouts
from transporter.cp.watch import EventWatch
from transporter.store.base import Store

CHECK_THREADS = 2
"""Large submissions checked at once (CPU-bound); more wait for a thread."""


@attrs.frozen
class Services:
    store: Store
    """Events, agents and the audit log, read; tokens, for the gate."""
    intake: Intake
    """Where accepted events go."""
    live: LiveAgents
    """The agents connected to this process (their live status)."""
    watch: EventWatch
    """Wakes waiting ``GET /events/{id}`` requests."""
    shared_store: bool = False
    """Whether other control-plane replicas write to the store (Redis)."""
    replica_look: float = REPLICA_LOOK
    """With a shared store, seconds between a waiting request's looks at its event besides
    the hints that wake it (:mod:`transporter.cp.replicas`)."""
    views: EventViews = attrs.field(factory=EventViews)
    """Turns records into answers (Secrets redacted)."""
    checking: trio.CapacityLimiter = attrs.field(
        factory=lambda: trio.CapacityLimiter(CHECK_THREADS)
    )
    """Threads that check large submissions."""
    metrics: CpMetrics = attrs.field(factory=CpMetrics)
    """This control plane's metrics (``GET /metrics``), which the API's answers move too."""
    rollouts: Rollouts = attrs.field(
        default=attrs.Factory(
            lambda self: Rollouts(
                self.store, self.intake, Progress(self.store, self.live, self.watch)
            ),
            takes_self=True,
        )
    )
    """Rollouts and plans (:mod:`transporter.cp.rollout`). The control plane passes its own,
    whose task runs; the default (for tests of the API alone) accepts them, and none moves."""


KEY = "transporter.services"


def services() -> Services:
    """The services of the app serving the current request."""
    found = current_app.extensions[KEY]
    assert isinstance(found, Services)
    return found
