"""One rollout moved one step, against the store: its children read in one call, the step's
moves carried out (children submitted in batches through the intake, queued ones cancelled
through the progress writer), and its record saved once, over the version it was read at; a
save that lost to another writer reads again and decides again."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import attrs
import trio

from transporter.cp.intake import Intake
from transporter.cp.progress import Progress
from transporter.cp.rollout import step as steps
from transporter.cp.rollout import targets
from transporter.cp.rollout.errors import NotCancellable, UnknownEvent
from transporter.cp.rollout.looks import Looks
from transporter.cp.rollout.submitter import REVOKED_NOTE, Submitters
from transporter.protocol.model import AgentInfo, AuditEntry, Event, EventRecord, EventState
from transporter.protocol.rollout import (
    PENDING,
    RolloutCluster,
    RolloutEntry,
    RolloutRecord,
    RolloutState,
    child_event_id,
)
from transporter.protocol.status import StatusUpdate
from transporter.store.base import EventProgress, Store, StoreError

log = logging.getLogger(__name__)

SUBMIT_BATCH = 500
"""Children submitted in one write at most."""
TRIES = 8
"""Saves of one change tried at most when other writers keep winning (each read again)."""

REVOKED = "revoked"
"""The timeline's entry of a standing rollout whose submitting token was revoked."""

Made = tuple[RolloutRecord, list[AuditEntry]] | None
Change = Callable[[RolloutRecord], Made]
"""A change to a record as read: the record to store and its audit entries, or ``None`` when
there is nothing to change."""


class Conflicted(Exception):
    """Other writers won every save of a change (:data:`TRIES` of them)."""


@attrs.define
class Mover:
    store: Store
    intake: Intake
    progress: Progress
    clock: Callable[[], float] = time.time
    ring: Callable[[str], None] = lambda rollout_id: None
    """Asks for another step of the rollout soon (a child that could not be read back)."""
    submitters: Submitters = attrs.field(
        default=attrs.Factory(lambda self: Submitters(self.store), takes_self=True)
    )
    """Whether a standing rollout's submitting token may still widen it."""
    looks: Looks = attrs.field(factory=Looks)
    """The last look at each rollout that changed nothing (the periodic look's shortcut)."""
    _locks: dict[str, trio.Lock] = attrs.field(factory=dict)
    _saved: trio.Event = attrs.field(factory=trio.Event)

    def next_save(self) -> trio.Event:
        """Set when a rollout's record is next stored by this process (take it before reading
        what it waits for, so that no save between is missed)."""
        return self._saved

    def stored(self, record: RolloutRecord | None) -> RolloutRecord | None:
        """``record`` as a save gave it back; when it was stored, whoever waits is woken."""
        if record is not None:
            self._saved.set()
            self._saved = trio.Event()
        return record

    async def advance(self, rollout_id: str, *, idle: bool = False) -> RolloutRecord | None:
        """Step the rollout until its record is stored (``None``: unknown). One step of one
        rollout at a time in this process; other replicas are kept apart by the versions.
        ``idle``: a periodic look, which leaves alone a rollout that nothing but a call here
        can move (standing with every cluster finished, or awaiting approval), without reading
        its children, and one whose children are as the last step that changed nothing read
        them, without reading its record (:mod:`.looks`)."""
        lock = self._locks.setdefault(rollout_id, trio.Lock())
        try:
            async with lock:
                if idle and (look := self.looks.recent(rollout_id)) is not None:
                    children = await self.store.event_progress(look.event_ids)
                    self._ring_queued(children)
                    if tuple(children) == look.children:
                        return look.record  # nothing a step reads changed (see .looks)
                    self.looks.forget(rollout_id)
                for _ in range(TRIES):
                    record = await self.store.get_rollout(rollout_id)
                    if record is None or record.state.final or (idle and quiet(record)):
                        return record
                    saved = await self._once(record)
                    if saved is not None:
                        return saved
                raise Conflicted(f"rollout {rollout_id}: other writers won {TRIES} saves")
        finally:
            if not lock.locked() and not lock.statistics().tasks_waiting:
                self._locks.pop(rollout_id, None)

    async def _once(self, record: RolloutRecord) -> RolloutRecord | None:
        # what a step needs of each child, never its payload (manifests: megabytes each)
        children = await self.store.event_progress([c.event_id for c in record.clusters])
        self._ring_queued(children)
        moves = steps.step(record, children, self.clock())
        started = await self._submit(record.spec.id, moves.start)
        await self._cancel(moves.record, moves.cancel, moves.cancel_message)
        new = steps.settle(moves.record, started)
        if new == record:
            self.looks.remember(record, children)
            return record
        self.looks.forget(record.spec.id)
        if not moves.changed:
            new = attrs.evolve(new, updated_at=self.clock())
        saved = self.stored(await self.store.save_rollout(new, moves.audits))
        if saved is not None and saved.state.final:
            log.info("rollout %s %s: %s", saved.spec.id, saved.state.value, saved.message)
        return saved

    def _ring_queued(self, children: Sequence[EventProgress | None]) -> None:
        """Children queued were started by another replica, maybe: their agents may be
        connected here."""
        for child in children:
            if child is not None and child.state is EventState.QUEUED:
                self.intake.live.ring(child.target_agent)

    async def _submit(self, rollout_id: str, events: Sequence[Event]) -> list[EventRecord]:
        """Submit the children, signed, in batches; returns those stored (now or before)."""
        stored: list[EventRecord] = []
        for first in range(0, len(events), SUBMIT_BATCH):
            batch = list(events[first : first + SUBMIT_BATCH])
            for result in await self.intake.accept_many(batch):
                if isinstance(result, StoreError):
                    # Stored already with another TTL (a replica, or a step before a crash,
                    # started it), or taken by another request: the next step reads which.
                    self.ring(rollout_id)
                else:
                    stored.append(result[0])
        return stored

    async def _cancel(self, record: RolloutRecord, event_ids: Sequence[str], why: str) -> int:
        """Cancel these queued children (those sent meanwhile finish); how many were."""
        if not event_ids:
            return 0
        agents = {c.event_id: c.agent_id for c in record.clusters}
        update = StatusUpdate(at=self.clock(), state=EventState.CANCELLED, message=why)
        written = [
            (agents[event_id], await self.progress.enqueue(event_id, agents[event_id], update))
            for event_id in event_ids
        ]
        done = 0
        for agent, pending in written:
            if await self.progress.updated(pending, agent) is not None:
                done += 1
        return done

    async def cancel_event(self, event_id: str, actor: str) -> EventRecord:
        """Cancel one queued event, through the progress writer (watchers woken, and its
        rollout told); see :meth:`.engine.Rollouts.cancel_event`."""
        record = await self.store.get_event(event_id)
        if record is None:
            raise UnknownEvent(event_id)
        if record.state is not EventState.QUEUED:
            raise NotCancellable(event_id, record.state)
        now, agent = self.clock(), record.event.target_agent
        why = f"cancelled by {actor}"
        update = StatusUpdate(at=now, state=EventState.CANCELLED, message=why)
        entry = AuditEntry(
            at=now, action="event.cancelled", actor=actor, agent_id=agent, event_id=event_id
        )
        pending = await self.progress.writer.enqueue(event_id, update, entry)
        cancelled = await self.progress.updated(pending, agent)
        if cancelled is None:  # sent (or ended) between the read and the write
            again = await self.store.get_event(event_id)
            raise NotCancellable(event_id, record.state if again is None else again.state)
        return cancelled

    async def change(self, rollout_id: str, change: Change) -> RolloutRecord | None:
        """Store ``change`` of the rollout as read, reading again while other writers win;
        ``None``: unknown. Returns the record stored (or as read, when nothing changed)."""
        for _ in range(TRIES):
            record = await self.store.get_rollout(rollout_id)
            if record is None:
                return None
            made = change(record)
            if made is None:
                return record
            new, audits = made
            new = attrs.evolve(new, updated_at=self.clock())
            self.looks.forget(rollout_id)
            saved = self.stored(await self.store.save_rollout(new, audits))
            if saved is not None:
                self.ring(rollout_id)
                return saved
        raise Conflicted(f"rollout {rollout_id}: other writers won {TRIES} saves")

    async def add_agents(self, rollout_id: str, agents: Sequence[AgentInfo]) -> int:
        """Make the agents that match a standing rollout (and that its submitter could reach)
        clusters of it, while the token that submitted it is not revoked (once it is, say so
        in the timeline, once); how many were added."""
        added, ask, read = 0, "", dict[str, bool]()

        def adding(record: RolloutRecord) -> Made:
            nonlocal added, ask
            added, new = 0, newcomers(record, agents)
            if not new:
                return None
            token = record.spec.token_id
            allowed = read[token] if token in read else self.submitters.known(token)
            if allowed is None:
                ask = token  # read it, then decide again
                return None
            if not allowed:
                return revoked(record, self.clock())
            added = len(new)
            return with_agents(record, new, self.clock())

        await self.change(rollout_id, adding)
        if ask:
            read[ask] = await self.submitters.look(ask)
            await self.change(rollout_id, adding)
        if added:
            log.info("rollout %s: %d agent(s) added", rollout_id, added)
        return added


def with_agents(record: RolloutRecord, new: Sequence[AgentInfo], now: float) -> Made:
    """``record`` with the ``new`` agents as clusters, each in its wave, and its audit entries
    (a standing rollout that had finished runs again)."""
    spec = record.spec
    clusters = [
        RolloutCluster(
            info.id, targets.wave_of(spec.strategy, info.labels), child_event_id(spec.id, info.id)
        )
        for info in new
    ]
    entries = [RolloutEntry(now, steps.AGENT_ADDED, c.agent_id, c.wave) for c in clusters]
    audits = [
        attrs.evolve(
            steps.audit(record, now, "rollout.agent_added", f"wave {c.wave + 1}"),
            agent_id=c.agent_id,
        )
        for c in clusters
    ]
    state = RolloutState.RUNNING if record.state is RolloutState.STANDING else record.state
    changed = attrs.evolve(
        record,
        clusters=(*record.clusters, *clusters),
        timeline=(*record.timeline, *entries),
        state=state,
    )
    return changed, audits


def revoked(record: RolloutRecord, now: float) -> Made:
    """The timeline's note that the rollout takes no more agents, its token being revoked
    (``None``: noted already)."""
    if any(entry.what == REVOKED for entry in record.timeline):
        return None
    entry = RolloutEntry(now, REVOKED, REVOKED_NOTE)
    return attrs.evolve(record, timeline=(*record.timeline, entry)), []


def quiet(record: RolloutRecord) -> bool:
    """Whether only a call (approve, cancel, close, an agent added) can move the rollout: its
    started clusters have all finished (a late agent's may work while a wave awaits
    approval), and it waits for that call."""
    if record.cancel_requested or record.closed:
        return False
    if any(c.state != PENDING and c.state not in steps.FINAL for c in record.clusters):
        return False
    return record.state in (RolloutState.STANDING, RolloutState.AWAITING_APPROVAL)


def newcomers(record: RolloutRecord, agents: Sequence[AgentInfo]) -> list[AgentInfo]:
    """The agents a standing, open rollout takes: selected by its selector, reached by its
    submitter's scope, not clusters already; within :data:`targets.MAX_CLUSTERS`."""
    spec = record.spec
    if not spec.standing or record.closed or record.state.final or spec.agents:
        return []
    if record.cancel_requested:
        return []
    have = {c.agent_id for c in record.clusters}
    chosen = targets.selector(spec.selector)
    new: dict[str, AgentInfo] = {}
    for info in agents:
        if info.id in have or info.id in new:
            continue
        if chosen.matches(info.labels) and targets.covers(spec.scope, info.id):
            new[info.id] = info
    room = max(0, targets.MAX_CLUSTERS - len(have))
    return sorted(new.values(), key=lambda info: info.id)[:room]
