"""The rollout engine: what the API asks of rollouts, and the task that moves them.

The truth about each cluster of a rollout is its child event in the store; the rollout's record
keeps a cached copy (for the API) and what only it knows: waves started, approvals, pauses,
cancellation. Every move is decided by :mod:`.step` (pure) from the record and the children as
read in one call, then carried out (:mod:`.mover`): children submitted in one batch, queued
ones cancelled, and the record saved once, over the version it was read at.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import attrs
import trio

from transporter.cp.intake import Intake
from transporter.cp.progress import Progress
from transporter.cp.rollout import changes, plans, targets
from transporter.cp.rollout.errors import (
    NoMatch,
    NotCovered,
    TooMany,
    UnknownRollout,
)
from transporter.cp.rollout.mover import Change, Mover
from transporter.cp.rollout.runner import RECONCILE_INTERVAL, SWEEP_INTERVAL, Runner
from transporter.cp.rollout.step import FINAL, audit
from transporter.cp.rollout.targets import CallerScope, MayTarget
from transporter.protocol.model import AgentInfo, EventRecord, EventState
from transporter.protocol.rollout import (
    PENDING,
    RolloutEntry,
    RolloutKind,
    RolloutRecord,
    RolloutSpec,
)
from transporter.protocol.rollout_request import PlanApply
from transporter.store.base import RolloutConflict, Store


class Rollouts:
    """The control plane's rollouts (one per control plane: it makes itself the listener of
    ``progress``, told of every change to a child, and of ``intake``, told of every agent that
    registers)."""

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
        self.mover = Mover(store, intake, progress, clock)
        self.runner = Runner(
            store, self.mover, reconcile_interval=reconcile_interval, sweep_interval=sweep_interval
        )
        self.mover.ring = self.runner.ring
        progress.on_rollout_event = self.event_changed
        intake.on_registered = self.agent_registered

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Move every open rollout until cancelled: at once when rung (a new rollout, a child
        that ended, an approval, an agent that registered), and every ``reconcile_interval``
        anyway. A store outage pauses it, it never ends it."""
        await self.runner.run(task_status=task_status)

    async def create(
        self, spec: RolloutSpec, *, may_target: MayTarget
    ) -> tuple[RolloutRecord, bool]:
        """Accept a rollout (or a plan: ``spec.kind``): resolve ``spec.selector`` or
        ``spec.agents`` against every agent the store knows (online or not; a listed agent that
        never registered is a target all the same: its event queues), assign each to its wave,
        and store it (audit ``rollout.accepted`` or ``plan.accepted``); the engine then starts
        it. Returns the stored record and ``True``; a repeat of a stored id with the same spec
        returns that record and ``False``. A plan's strategy is always
        :data:`~.plans.PLAN_STRATEGY` (all at once, none left out), and a plan never stands.

        Raises :class:`~.errors.NotCovered` (naming them) when ``may_target`` refuses some
        matched agent, :class:`~.errors.NoMatch` when nothing matched and not
        ``spec.allow_empty``, :class:`~.errors.TooMany` past :data:`~.targets.MAX_CLUSTERS`;
        nothing is stored then. :class:`RolloutConflict` (from the store) when the id is taken
        by another spec."""
        if spec.kind is RolloutKind.PLAN:
            spec = attrs.evolve(spec, strategy=plans.PLAN_STRATEGY, standing=False)
        existing = await self.store.get_rollout(spec.id)
        if existing is not None:
            if attrs.evolve(existing.spec, created_at=spec.created_at) != spec:
                raise RolloutConflict(spec.id)
            targets.check_reach(existing, may_target)
            return existing, False
        found = targets.matched(spec, await self.store.list_agents())
        if len(found) > targets.MAX_CLUSTERS:
            raise TooMany(
                f"the selector matches {len(found)} agents; a rollout takes at most"
                f" {targets.MAX_CLUSTERS}"
            )
        if not found and not spec.allow_empty:
            raise NoMatch(f"no agent matches the selector {spec.selector!r}")
        missing = targets.uncovered(found, may_target)
        if missing:
            raise NotCovered(missing)
        clusters = targets.clusters(spec, found)
        what = f"{len(clusters)} cluster{'' if len(clusters) == 1 else 's'}"
        record = RolloutRecord(
            spec,
            clusters=tuple(clusters),
            timeline=(RolloutEntry(spec.created_at, "accepted", what),),
            updated_at=spec.created_at,
        )
        kind = "plan" if spec.kind is RolloutKind.PLAN else "rollout"
        accepted = audit(record, spec.created_at, f"{kind}.accepted", what, spec.created_by)
        stored, created = await self.store.create_rollout(record, accepted)
        if created:
            self.mover.stored(stored)
            self.runner.ring(spec.id)
        return stored, created

    async def get(self, rollout_id: str) -> RolloutRecord | None:
        """The rollout's record as stored (``None``: unknown)."""
        return await self.store.get_rollout(rollout_id)

    async def approve(
        self,
        rollout_id: str,
        wave: int | None,
        *,
        actor: str,
        may_target: MayTarget,
        scope: CallerScope = None,
    ) -> RolloutRecord:
        """Release the wave that awaits approval (``wave``: that one, which must be the one
        waiting; ``None``: whichever waits), and start it. Audit ``rollout.approved``.

        Raises :class:`~.errors.UnknownRollout`, :class:`~.errors.NotCovered` (the caller must
        reach the whole rollout: :func:`~.targets.check_reach`, with its ``scope``, as for
        cancel and close), :class:`~.errors.NothingToApprove` (none waits, or not ``wave``)."""
        await self._reachable(rollout_id, may_target, scope)
        await self._change(rollout_id, changes.approving(wave, actor, self.clock()))
        return await self._advanced(rollout_id)

    async def cancel(
        self, rollout_id: str, *, actor: str, may_target: MayTarget, scope: CallerScope = None
    ) -> tuple[RolloutRecord, int, int]:
        """Start nothing more: clusters not started end ``cancelled``, children still queued are
        cancelled, those sent already finish (the rollout ends ``cancelled`` once they have).
        Returns the record, how many were cancelled (children and clusters never started) and
        how many are still running. Cancelling a final rollout changes nothing (0, 0).
        Audit ``rollout.cancelled``.

        Raises :class:`~.errors.UnknownRollout`, :class:`~.errors.NotCovered`."""
        record = await self._reachable(rollout_id, may_target, scope)
        if record.state.final:
            return record, 0, 0
        before = await self.store.event_progress([c.event_id for c in record.clusters])
        open_ = {
            c.event_id
            for c, child in zip(record.clusters, before, strict=True)
            if (child is None and c.state == PENDING) or (child and not child.state.terminal)
        }
        await self._change(rollout_id, changes.cancelling(actor, self.clock()))
        await self.mover.advance(rollout_id)  # cancels the queued children
        after = await self._advanced(rollout_id)  # and sees them cancelled
        cancelled = running = 0
        for cluster in after.clusters:
            if cluster.event_id not in open_:
                continue
            if cluster.state == EventState.CANCELLED.value:
                cancelled += 1
            elif cluster.state not in FINAL:
                running += 1
        return after, cancelled, running

    async def close(
        self, rollout_id: str, *, actor: str, may_target: MayTarget, scope: CallerScope = None
    ) -> RolloutRecord:
        """A standing rollout takes no new agent any more; it ends (completed or failed, by its
        clusters) once every cluster has finished. Audit ``rollout.closed``. Closing a rollout
        that is not standing, or is closed, changes nothing.

        Raises :class:`~.errors.UnknownRollout`, :class:`~.errors.NotCovered`."""
        await self._reachable(rollout_id, may_target, scope)
        await self._change(rollout_id, changes.closing(actor, self.clock()))
        return await self._advanced(rollout_id)

    async def cancel_event(self, event_id: str, *, actor: str) -> EventRecord:
        """Cancel one queued event (a single one or a rollout's child): it is never sent.
        Returns its record, ``cancelled``. Audit ``event.cancelled``. The caller checks the
        token's reach to the event's agent first.

        Raises :class:`~.errors.UnknownEvent`, :class:`~.errors.NotCancellable` (sent already,
        or final: its ``state``)."""
        return await self.mover.cancel_event(event_id, actor)

    async def apply_plan(
        self,
        plan_id: str,
        asked: PlanApply,
        *,
        actor: str,
        may_target: MayTarget,
        scope: CallerScope = None,
    ) -> tuple[RolloutRecord, bool]:
        """A rollout (kind ``apply``, ``plan_id`` set) of what the plan planned (see
        :mod:`.plans`) over the agents whose plan completed, as ``asked`` (its ``rollout_id``
        ``None``: an id is made); a repeat of the same request answers the stored one,
        ``False``, before the plan is checked (it may have expired since); the caller's reach
        to the plan's clusters is checked before anything of the plan's state is told.

        Raises :class:`~.errors.UnknownRollout`, :class:`~.errors.NotCovered`,
        :class:`~.errors.NotAPlan`, :class:`~.errors.PlanNotReady` (not finished),
        :class:`~.errors.PlanExpired` (past its ``ttl``), :class:`~.errors.NoMatch` (no
        cluster's plan completed), :class:`RolloutConflict` (the id is another's)."""
        rollout_id = asked.rollout_id
        if rollout_id is not None and (done := await self.store.get_rollout(rollout_id)):
            if not plans.same_apply(done.spec, plan_id, asked, actor):
                raise RolloutConflict(rollout_id)
            targets.check_reach(done, may_target)
            return done, False
        plan = await self.store.get_rollout(plan_id)
        if plan is None:
            raise UnknownRollout(plan_id)
        targets.check_reach(plan, may_target, scope)
        now = self.clock()
        plans.check_plan(plan, now)
        spec = plans.apply_spec(plan, await self.children(plan), asked, actor=actor, now=now)
        if not spec.agents:
            raise NoMatch(f"plan {plan_id!r} completed on no cluster: nothing to apply")
        return await self.create(spec, may_target=may_target)

    async def children(self, record: RolloutRecord) -> list[EventRecord | None]:
        """The child events of ``record``'s clusters, in its clusters' order, read in one call
        (``None`` for a cluster not started)."""
        return await self.store.get_events([c.event_id for c in record.clusters])

    def agent_registered(self, info: AgentInfo) -> None:
        """An agent registered (with this control plane): standing rollouts that match it get
        it as a new cluster, soon (the engine's task does the work)."""
        self.runner.arrived(info)

    def event_changed(self, record: EventRecord) -> None:
        """A child event's state changed (``record.event.rollout_id`` set): its rollout is
        looked at soon when the child has ended (what it does meanwhile changes no decision;
        the periodic look refreshes the record's copy of it)."""
        if record.event.rollout_id and record.state.terminal:
            self.runner.ring(record.event.rollout_id)

    def next_change(self) -> trio.Event:
        """Set when this process next stores a rollout's change (or accepts one): take it before
        reading the rollout, then wait on it, and no change between is missed."""
        return self.mover.next_save()

    async def _reachable(
        self, rollout_id: str, may_target: MayTarget, scope: CallerScope
    ) -> RolloutRecord:
        record = await self.store.get_rollout(rollout_id)
        if record is None:
            raise UnknownRollout(rollout_id)
        targets.check_reach(record, may_target, scope)
        return record

    async def _change(self, rollout_id: str, change: Change) -> None:
        if await self.mover.change(rollout_id, change) is None:
            raise UnknownRollout(rollout_id)

    async def _advanced(self, rollout_id: str) -> RolloutRecord:
        record = await self.mover.advance(rollout_id)
        if record is None:
            raise UnknownRollout(rollout_id)
        return record
