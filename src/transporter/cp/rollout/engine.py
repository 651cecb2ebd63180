"""The rollout engine: what the API asks of rollouts, and the task that moves them.

The truth about each cluster of a rollout is its child event in the store; the rollout's record
keeps a cached copy (for the API) and what only it knows: waves started, approvals, pauses,
cancellation. Every move is decided by :mod:`.step` (pure) from the record and the children as
read in one call, then carried out: children submitted in one batch, queued ones cancelled,
and the record saved once, over the version it was read at.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import trio

from transporter.cp.intake import Intake
from transporter.cp.progress import Progress
from transporter.protocol.model import AgentInfo, EventRecord
from transporter.protocol.rollout import RolloutRecord, RolloutSpec, Strategy
from transporter.store.base import Store

RECONCILE_INTERVAL = 2.0
"""Seconds between looks at every open rollout (other replicas' reports, expiries, pauses)."""
SWEEP_INTERVAL = 10.0
"""Seconds between looks for agents that registered with another replica (standing rollouts)."""

MayTarget = Callable[[str], bool]


class Rollouts:
    """The control plane's rollouts (one per control plane)."""

    def __init__(
        self,
        store: Store,
        intake: Intake,
        progress: Progress,
        *,
        clock: Callable[[], float] = time.time,
        reconcile_interval: float = RECONCILE_INTERVAL,
        sweep_interval: float = SWEEP_INTERVAL,
    ) -> None:
        self.store = store
        self.intake = intake
        self.progress = progress
        self.clock = clock
        self.reconcile_interval = reconcile_interval
        self.sweep_interval = sweep_interval

    async def create(
        self, spec: RolloutSpec, *, may_target: MayTarget
    ) -> tuple[RolloutRecord, bool]:
        """Accept a rollout (or a plan: ``spec.kind``): resolve ``spec.selector`` or
        ``spec.agents`` against every agent the store knows (online or not; a listed agent that
        never registered is a target all the same: its event queues), assign each to its wave,
        and store it (audit ``rollout.accepted`` or ``plan.accepted``); the engine then starts
        it. Returns the stored record and ``True``; a repeat of a stored id with the same spec
        returns that record and ``False``.

        Raises :class:`~.errors.NotCovered` (naming them) when ``may_target`` refuses some
        matched agent, :class:`~.errors.NoMatch` when nothing matched and not
        ``spec.allow_empty``; nothing is stored then. :class:`RolloutConflict` (from the
        store) when the id is taken by another spec."""
        raise NotImplementedError

    async def get(self, rollout_id: str) -> RolloutRecord | None:
        """The rollout's record as stored (``None``: unknown)."""
        raise NotImplementedError

    async def approve(
        self, rollout_id: str, wave: int | None, *, actor: str, may_target: MayTarget
    ) -> RolloutRecord:
        """Release the wave that awaits approval (``wave``: that one, which must be the one
        waiting; ``None``: whichever waits). Audit ``rollout.approved``.

        Raises :class:`~.errors.UnknownRollout`, :class:`~.errors.NotCovered` (the token must
        reach every cluster of the rollout), :class:`~.errors.NothingToApprove` (no wave waits,
        or another than ``wave``)."""
        raise NotImplementedError

    async def cancel(
        self, rollout_id: str, *, actor: str, may_target: MayTarget
    ) -> tuple[RolloutRecord, int, int]:
        """Start nothing more: clusters not started end ``cancelled``, children still queued are
        cancelled, those sent already finish (the rollout ends ``cancelled`` once they have).
        Returns the record, how many were cancelled (children and clusters never started) and
        how many are still running. Cancelling a final rollout changes nothing (0, 0).
        Audit ``rollout.cancelled``.

        Raises :class:`~.errors.UnknownRollout`, :class:`~.errors.NotCovered`."""
        raise NotImplementedError

    async def close(self, rollout_id: str, *, actor: str, may_target: MayTarget) -> RolloutRecord:
        """A standing rollout takes no new agent any more; it ends (completed or failed, by its
        clusters) once every cluster has finished. Audit ``rollout.closed``. Closing a rollout
        that is not standing, or is closed, changes nothing.

        Raises :class:`~.errors.UnknownRollout`, :class:`~.errors.NotCovered`."""
        raise NotImplementedError

    async def cancel_event(self, event_id: str, *, actor: str) -> EventRecord:
        """Cancel one queued event (a single one or a rollout's child): it is never sent.
        Returns its record, ``cancelled``. Audit ``event.cancelled``. The caller checks the
        token's reach to the event's agent first.

        Raises :class:`~.errors.UnknownEvent`, :class:`~.errors.NotCancellable` (sent already,
        or final: its ``state``)."""
        raise NotImplementedError

    async def apply_plan(
        self,
        plan_id: str,
        *,
        rollout_id: str | None,
        strategy: Strategy,
        wait_ready: bool,
        ready_timeout: int,
        ttl: int,
        actor: str,
        may_target: MayTarget,
    ) -> tuple[RolloutRecord, bool]:
        """A rollout (kind ``apply``, ``plan_id`` set) of what the plan planned: over the agents
        whose plan event completed, with the plan's manifests and its action, and for each
        agent the fingerprints its plan saw (``expect``; objects refused or failed in the plan
        are left out, so they come back ``drifted``). ``rollout_id``: its id (``None``: one is
        made; a repeat with the same id and request answers the stored one, ``False``).

        Raises :class:`~.errors.UnknownRollout`, :class:`~.errors.NotAPlan`,
        :class:`~.errors.PlanNotReady` (not finished), :class:`~.errors.PlanExpired` (past its
        ``ttl``), :class:`~.errors.NotCovered`, :class:`~.errors.NoMatch` (no cluster's plan
        completed)."""
        raise NotImplementedError

    async def children(self, record: RolloutRecord) -> list[EventRecord | None]:
        """The child events of ``record``'s clusters, in its clusters' order, read in one call
        (``None`` for a cluster not started)."""
        raise NotImplementedError

    def agent_registered(self, info: AgentInfo) -> None:
        """An agent registered (with this control plane): standing rollouts that match it get
        it as a new cluster, soon (the engine's task does the work)."""
        raise NotImplementedError

    def event_changed(self, record: EventRecord) -> None:
        """A child event's state changed (``record.event.rollout_id`` set): its rollout is
        looked at soon."""
        raise NotImplementedError

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Move every open rollout until cancelled: at once when rung (a new rollout, a child
        that changed, an approval, an agent that registered), and every
        ``reconcile_interval`` anyway. A store outage pauses it, it never ends it."""
        raise NotImplementedError
