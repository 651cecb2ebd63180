"""Rollouts and plans: one request for many clusters, as the control plane keeps it.

A rollout is a submission whose target is a list of agents or a label selector over the agents'
labels (:mod:`.selector`). It is resolved once, when accepted, against every agent the control
plane knows (online or not); each matched agent (a *cluster* of the rollout) gets one ordinary
child event, signed and delivered like any other, whose id is :func:`child_event_id` (so that
starting it twice, after a crash, stores it once). The strategy says how many run at once, how
many may fail before the rest are not started, and in which waves they go.

A plan is a rollout of ``kind`` ``plan``: its child events have the action ``plan`` (a server-side
dry run on each cluster); applying it makes a new rollout that applies only what was planned.

Plain immutable data; the control plane's :mod:`transporter.cp.rollout` moves it.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Final, Literal

import attrs

from transporter.protocol.model import K8sPayload

ROLLOUT_ID_RULE: Final = (
    "1-64 letters, digits, '.' or '-', starting with a letter or digit (no '_': child events"
    " are named <rollout id>_<agent id>)"
)
_ROLLOUT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,63}")


def is_rollout_id(text: str) -> bool:
    return bool(_ROLLOUT_ID.fullmatch(text))


def child_event_id(rollout_id: str, agent_id: str) -> str:
    """The id of the rollout's event for ``agent_id``: at most 128 characters (64 + 1 + 63), and
    one (rollout, agent) pair per id, because neither part may hold ``_``."""
    return f"{rollout_id}_{agent_id}"


class RolloutKind(StrEnum):
    APPLY = "apply"
    """Child events carry the submitted action (apply or delete)."""
    PLAN = "plan"
    """Child events are server-side dry runs (action ``plan``)."""


class RolloutState(StrEnum):
    RUNNING = "running"
    """Clusters are being started or are working."""
    PAUSED = "paused"
    """Between waves: the next starts at ``resume_at``."""
    AWAITING_APPROVAL = "awaiting_approval"
    """Between waves: the next starts when someone approves it."""
    STANDING = "standing"
    """Every cluster so far has finished; agents that register later and match still get the
    event, until the rollout is closed."""
    COMPLETED = "completed"
    """Every cluster completed."""
    FAILED = "failed"
    """Some cluster did not complete (failed, expired, drifted, or was not started because
    ``max_failures`` was passed)."""
    CANCELLED = "cancelled"
    """Cancelled: nothing more was started; what was running finished."""

    @property
    def final(self) -> bool:
        return self in (RolloutState.COMPLETED, RolloutState.FAILED, RolloutState.CANCELLED)


PENDING: Final = "pending"
"""A cluster's state before its child event exists (its wave has not started, or its turn within
the wave has not come). Otherwise a cluster's state is its event's state (``queued`` …
``completed``, ``failed``, ``expired``, ``cancelled``), or ``drifted``: applying a plan, some
object had changed since the plan, and was not touched."""
DRIFTED: Final = "drifted"


@attrs.frozen
class Wave:
    """Clusters matching ``selector`` (``""``: every cluster not in an earlier wave), started
    after every earlier wave has finished within the failure budget."""

    selector: str = ""
    pause: int = 0
    """Seconds to wait after the previous wave finished before this one starts."""
    approval: bool = False
    """Wait for ``approve`` before this wave starts (after ``pause``, if both)."""


@attrs.frozen
class Strategy:
    max_parallel: int = 0
    """Clusters working at once (child event started, not final); 0: no limit."""
    max_parallel_percent: int = 0
    """As a percentage of the rollout's clusters (rounded up, at least 1); used when set."""
    max_failures: int = 0
    """Clusters that may fail before the rest are not started (and end ``cancelled``)."""
    waves: tuple[Wave, ...] = ()
    """In order; a cluster belongs to the first wave it matches; clusters matching none form a
    last wave of their own. No waves: one wave of every cluster."""


@attrs.frozen
class RolloutSpec:
    """What was asked, as accepted: never changes."""

    id: str
    kind: RolloutKind
    payload: K8sPayload = attrs.field(repr=False)
    """The child events' payload (a plan's apply adds each cluster's ``expect``)."""
    created_at: float
    ttl: int
    """Seconds after ``created_at`` by which every child event must have finished (a child
    started later gets what remains); a standing rollout's late children get the whole ``ttl``."""
    created_by: str = ""
    selector: str = ""
    """The label selector, canonical (:meth:`Selector.__str__`); empty when ``agents`` is given."""
    agents: tuple[str, ...] = ()
    """The agents named, when the target is a list."""
    strategy: Strategy = Strategy()
    standing: bool = False
    allow_empty: bool = False
    priority: int = 0
    labels: dict[str, str] = attrs.field(factory=dict)
    scope: tuple[str, ...] = ()
    """The submitting token's agent patterns (empty: every agent), kept so that a standing
    rollout reaches only agents its submitter could reach."""
    plan_id: str = ""
    """Applying a plan: the plan's id."""
    token_id: str = ""
    """The id of the token that submitted it (empty without authentication): once it is
    revoked, a standing rollout takes no more agents."""
    expects: dict[str, dict[str, str]] = attrs.field(factory=dict, repr=False)
    """Applying a plan: for each agent, its child's :attr:`K8sPayload.expect`."""


@attrs.frozen
class RolloutCluster:
    agent_id: str
    wave: int
    event_id: str
    state: str = PENDING
    """:data:`PENDING`, an event state, or :data:`DRIFTED`."""
    phase: str = ""
    message: str = ""
    updated_at: float = 0.0


@attrs.frozen
class RolloutEntry:
    """A line of the rollout's own timeline: waves started, paused, approved, cancelled …"""

    at: float
    what: str
    """``accepted``, ``wave_started``, ``paused``, ``awaiting_approval``, ``approved``,
    ``max_failures``, ``cancelled``, ``agent_added``, ``closed``, ``completed``, ``failed``."""
    message: str = ""
    wave: int | None = None


@attrs.frozen
class RolloutRecord:
    """A rollout and where it stands: what ``GET /rollouts/{id}`` shows."""

    spec: RolloutSpec
    state: RolloutState = RolloutState.RUNNING
    message: str = ""
    """Why it ended as it did (or why it waits)."""
    wave: int = 0
    """The wave started last (index into the rollout's waves)."""
    approved: tuple[int, ...] = ()
    """Waves released by ``approve``."""
    resume_at: float | None = None
    """``paused``: when the next wave starts."""
    cancel_requested: bool = False
    closed: bool = False
    """A standing rollout that was closed: no agent is added any more."""
    clusters: tuple[RolloutCluster, ...] = ()
    timeline: tuple[RolloutEntry, ...] = ()
    version: int = 0
    """Bumped by every stored change; a change is stored only over the version it was made
    from (:meth:`RolloutStore.save_rollout`), so that two writers never undo each other."""
    seq: int = 0
    """Order of acceptance by the store (lists are newest first)."""
    updated_at: float = 0.0

    def counts(self) -> dict[str, int]:
        """Clusters per state."""
        out: dict[str, int] = {}
        for cluster in self.clusters:
            out[cluster.state] = out.get(cluster.state, 0) + 1
        return out


RolloutOp = Literal["approve", "cancel", "close"]
