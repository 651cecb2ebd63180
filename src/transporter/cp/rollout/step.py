"""The rollout's next move, decided from its record and its children as stored: pure, so that
any replica, or this one after a restart, decides the same from the same store.

The children are the truth about the clusters: a cluster whose child exists is started,
whatever the record's cached copy says. Waves go in order: wave ``n + 1`` starts only when
every cluster of the waves up to ``n`` has finished and the failures are within
``max_failures``, after its ``pause`` (wave 0 has none) and its approval. Within the started
waves, clusters start in order (wave, then agent id) while fewer than the parallel limit work.
Past ``max_failures``, or once cancelled, nothing more starts: clusters not started end
``cancelled``, children still queued are cancelled, those sent finish.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Final

import attrs

from transporter.cp.rollout import children as kids
from transporter.cp.rollout import targets
from transporter.protocol.model import AuditEntry, Event, EventRecord, EventState
from transporter.protocol.rollout import (
    PENDING,
    RolloutCluster,
    RolloutEntry,
    RolloutRecord,
    RolloutState,
)
from transporter.store.base import EventProgress

COMPLETED: Final = EventState.COMPLETED.value
FINAL: Final = frozenset({state.value for state in EventState if state.terminal} | {"drifted"})
"""A cluster's final states; all but ``completed`` are failures."""
AGENT_ADDED: Final = "agent_added"
CLUSTER_MESSAGE: Final = 300
WAVE_STARTED: Final = "wave_started"


@attrs.frozen
class Moves:
    """What to do: submit ``start``, cancel the queued children ``cancel`` (with
    ``cancel_message``), then store ``record`` (over the version read) with ``audits``."""

    record: RolloutRecord
    changed: bool
    """Whether ``record`` differs from the one read (else there is nothing to store)."""
    start: tuple[Event, ...] = ()
    cancel: tuple[str, ...] = ()
    cancel_message: str = ""
    audits: tuple[AuditEntry, ...] = ()


def step(record: RolloutRecord, children: Sequence[EventProgress | None], now: float) -> Moves:
    """The moves of ``record`` given its clusters' ``children`` (same order; ``None``: none)."""
    work = _Work(record, list(children), now)
    if not record.state.final:
        work.advance()
    return work.moves()


def refreshed(
    record: RolloutRecord, cluster: RolloutCluster, child: EventProgress | None
) -> RolloutCluster:
    """``cluster`` as its child says (the cache the API shows)."""
    if child is None:
        if cluster.state == PENDING or cluster.state in FINAL:
            return cluster  # not started, or ended without a child (cancelled, expired)
        return attrs.evolve(cluster, state=PENDING, phase="", message="")
    if not kids.owned(record.spec, cluster, child):
        return attrs.evolve(
            cluster,
            state=EventState.FAILED.value,
            phase="",
            message=f"event id {cluster.event_id!r} is taken by an event of another request",
            updated_at=child.updated_at,
        )
    return attrs.evolve(
        cluster,
        state=kids.cluster_state(child),
        phase=child.phase.value if child.phase is not None else "",
        message=cut(child.message),
        updated_at=child.updated_at,
    )


def cut(message: str) -> str:
    """A child's message as the rollout's record keeps it: at most :data:`CLUSTER_MESSAGE`
    characters (the whole one is the child's), so that a record of many clusters stays small."""
    if len(message) <= CLUSTER_MESSAGE:
        return message
    return message[: CLUSTER_MESSAGE - 1] + "…"


def settle(record: RolloutRecord, started: Sequence[EventRecord]) -> RolloutRecord:
    """``record`` with the clusters of the children just ``started`` as they were stored."""
    stored = {child.event.id: EventProgress.of(child) for child in started}
    if not stored:
        return record
    clusters = tuple(
        refreshed(record, c, stored[c.event_id]) if c.event_id in stored else c
        for c in record.clusters
    )
    return attrs.evolve(record, clusters=clusters)


def current_wave(record: RolloutRecord, children: Sequence[EventProgress | None]) -> int:
    """The last wave started (-1: none yet): by the timeline, or by a child of this rollout
    that exists (a step that started a wave's children and crashed before it was stored); an
    event of another request stored under a child's id starts no wave."""
    started = [entry.wave for entry in record.timeline if entry.what == WAVE_STARTED]
    started += [
        c.wave
        for c, child in zip(record.clusters, children, strict=True)
        if child is not None and kids.owned(record.spec, c, child)
    ]
    return max((wave for wave in started if wave is not None), default=-1)


def late_agents(record: RolloutRecord) -> frozenset[str]:
    """Agents a standing rollout took after it was accepted (they get the whole TTL)."""
    return frozenset(entry.message for entry in record.timeline if entry.what == AGENT_ADDED)


def _clusters(n: int) -> str:
    return f"{n} cluster{'' if n == 1 else 's'}"


def _last_started(timeline: Sequence[RolloutEntry], default: int) -> int:
    """The index of the wave started last, by the timeline."""
    started = [e.wave for e in timeline if e.what == WAVE_STARTED and e.wave is not None]
    return max(started, default=default)


def utc(at: float) -> str:
    """``at`` as people read it, the same at every step (a message that changed with the
    clock would be a change to store at every step)."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


def failures(clusters: Sequence[RolloutCluster]) -> int:
    return sum(1 for c in clusters if c.state in FINAL and c.state != COMPLETED)


def audit(
    record: RolloutRecord, at: float, action: str, detail: str, actor: str = ""
) -> AuditEntry:
    """An audit entry about the rollout (its id leads the detail)."""
    kind = "plan" if record.spec.kind.value == "plan" else "rollout"
    return AuditEntry(
        at=at, action=action, actor=actor, detail=f"{kind} {record.spec.id}: {detail}"
    )


@attrs.define
class _Work:
    """One step under way: the record's fields as the step changes them."""

    record: RolloutRecord
    children: list[EventProgress | None]
    now: float
    clusters: list[RolloutCluster] = attrs.field(init=False)
    state: RolloutState = attrs.field(init=False)
    message: str = attrs.field(init=False)
    resume_at: float | None = attrs.field(init=False)
    timeline: list[RolloutEntry] = attrs.field(init=False)
    audits: list[AuditEntry] = attrs.field(factory=list)
    start: list[Event] = attrs.field(factory=list)
    starting: set[int] = attrs.field(factory=set)
    """Indexes of the clusters in ``start``."""
    cancel: list[str] = attrs.field(factory=list)
    cancel_message: str = ""

    def __attrs_post_init__(self) -> None:
        record = self.record
        self.clusters = [
            refreshed(record, c, child)
            for c, child in zip(record.clusters, self.children, strict=True)
        ]
        self.state, self.message, self.resume_at = record.state, record.message, record.resume_at
        self.timeline = list(record.timeline)

    def moves(self) -> Moves:
        clusters = list(self.clusters)
        record = attrs.evolve(
            self.record,
            clusters=tuple(clusters),
            state=self.state,
            message=self.message,
            resume_at=self.resume_at,
            timeline=tuple(self.timeline),
            wave=max(0, _last_started(self.timeline, self.record.wave)),
        )
        changed = record != self.record
        if changed:
            record = attrs.evolve(record, updated_at=self.now)
        return Moves(
            record,
            changed,
            tuple(self.start),
            tuple(self.cancel),
            self.cancel_message,
            tuple(self.audits),
        )

    def note(self, what: str, message: str = "", wave: int | None = None) -> None:
        self.timeline.append(RolloutEntry(self.now, what, message, wave))

    def pending(self, index: int) -> bool:
        return self.clusters[index].state == PENDING and index not in self.starting

    def in_flight(self) -> int:
        working = sum(
            1
            for c, child in zip(self.clusters, self.children, strict=True)
            if child is not None and c.state not in FINAL
        )
        return working + len(self.start)

    def advance(self) -> None:
        spec = self.record.spec
        if self.record.cancel_requested:
            self.stop(f"not started: the rollout was cancelled ({self.record.message})")
            return
        limit = targets.parallel_limit(spec.strategy, len(self.clusters))
        current = current_wave(self.record, self.children)
        self.recorded_started(current)
        while True:
            if self.over_budget():
                return
            if current >= 0:
                self.fill(current, limit)
                if self.over_budget():
                    return
                if self.busy(current):
                    if self.state is not RolloutState.AWAITING_APPROVAL:
                        # awaiting: a standing rollout's late agent in a started wave runs
                        # while the next wave still awaits its approval (said once)
                        self.state, self.message = RolloutState.RUNNING, ""
                    return
            later = [c.wave for i, c in enumerate(self.clusters) if self.pending(i)]
            if not later:
                self.finish()
                return
            following = min(later)
            if not self.gate(following, current):
                return
            current = following
            self.wave_started(current)

    def over_budget(self) -> bool:
        """Past ``max_failures``: stop, and say so once."""
        allowed = self.record.spec.strategy.max_failures
        failed = failures(self.clusters)
        if failed <= allowed:
            return False
        self.start.clear()
        self.starting.clear()
        said = [entry.message for entry in self.timeline if entry.what == "max_failures"]
        why = said[0] if said else f"{_clusters(failed)} failed, more than max_failures {allowed}"
        if not said:
            self.note("max_failures", why)
        self.stop(f"not started: {why}", ending=why)
        return True

    def fill(self, current: int, limit: int) -> None:
        """Start pending clusters of the started waves, in order, within ``limit``."""
        spec, late = self.record.spec, late_agents(self.record)
        waiting = sorted(
            (c.wave, c.agent_id, i)
            for i, c in enumerate(self.clusters)
            if c.wave <= current and self.pending(i)
        )
        room = limit - self.in_flight() if limit else len(waiting)
        for _, agent, index in waiting:
            if room <= 0:
                break
            made = kids.child_event(spec, self.clusters[index], self.now, late=agent in late)
            if isinstance(made, kids.NotStarted):
                self.clusters[index] = attrs.evolve(
                    self.clusters[index],
                    state=made.state,
                    message=made.message,
                    updated_at=self.now,
                )
                continue
            self.start.append(made)
            self.starting.add(index)
            room -= 1

    def busy(self, current: int) -> bool:
        """Whether the started waves still have clusters to start or working."""
        waiting = any(c.wave <= current and self.pending(i) for i, c in enumerate(self.clusters))
        return waiting or self.in_flight() > 0

    def gate(self, wave: int, current: int) -> bool:
        """Whether ``wave`` may start now: its pause (none before the first) is over and it
        is approved if it must be; else the rollout waits (paused or awaiting approval)."""
        rule = targets.wave_def(self.record.spec.strategy, wave)
        if rule.pause and current >= 0:
            if self.resume_at is None:
                self.resume_at = self.now + rule.pause
                self.note("paused", f"wave {wave + 1} starts in {rule.pause} s", wave)
            if self.now < self.resume_at:
                self.state = RolloutState.PAUSED
                self.message = f"wave {wave + 1} starts at {utc(self.resume_at)}"
                return False
        if rule.approval and wave not in self.record.approved:
            if self.state is not RolloutState.AWAITING_APPROVAL:
                why = f"wave {wave + 1} awaits approval"
                self.note("awaiting_approval", why, wave)
                self.audits.append(audit(self.record, self.now, "rollout.awaiting_approval", why))
            self.state = RolloutState.AWAITING_APPROVAL
            self.message = f"wave {wave + 1} awaits approval"
            return False
        return True

    def recorded_started(self, current: int) -> None:
        """Waves whose children exist but whose start is not in the timeline (the step that
        started them stopped before its record was stored: a crash): written now, with their
        audit entries, so that the timeline and the record's ``wave`` tell the truth."""
        last = _last_started(self.timeline, -1)
        for wave in range(last + 1, current + 1):
            if any(c.wave == wave for c in self.clusters):
                self.wave_started(wave)

    def wave_started(self, wave: int) -> None:
        size = sum(1 for c in self.clusters if c.wave == wave)
        self.resume_at = None
        self.state, self.message = RolloutState.RUNNING, ""
        what = f"wave {wave + 1} started ({_clusters(size)})"
        self.note(WAVE_STARTED, what, wave)
        self.audits.append(audit(self.record, self.now, "rollout.wave_started", what))

    def finish(self) -> None:
        """Every cluster has finished (and none waits for a later wave)."""
        spec = self.record.spec
        if spec.standing and not self.record.closed:
            if self.state is not RolloutState.STANDING:
                self.state, self.message = RolloutState.STANDING, "waiting for new agents"
            return
        total, failed = len(self.clusters), failures(self.clusters)
        if failed == 0:
            self.end(RolloutState.COMPLETED, f"{total} of {total} clusters completed")
            return
        counts: dict[str, int] = {}
        for c in self.clusters:
            if c.state != COMPLETED:
                counts[c.state] = counts.get(c.state, 0) + 1
        detail = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
        self.end(RolloutState.FAILED, f"{failed} of {total} clusters did not complete: {detail}")

    def end(self, state: RolloutState, message: str) -> None:
        self.state, self.message, self.resume_at = state, message, None
        if state is RolloutState.CANCELLED:  # audited when asked; this is when it ended
            self.note(state.value, "every cluster sent has finished")
            return
        self.note(state.value, message)
        self.audits.append(audit(self.record, self.now, f"rollout.{state.value}", message))

    def stop(self, why: str, *, ending: str = "") -> None:
        """Start nothing more: pending clusters end cancelled (``why``), queued children are
        cancelled; the rollout ends once the children sent have finished."""
        for index, cluster in enumerate(self.clusters):
            if cluster.state == PENDING:
                self.clusters[index] = attrs.evolve(
                    cluster, state=EventState.CANCELLED.value, message=why, updated_at=self.now
                )
        self.cancel = [
            child.event_id
            for c, child in zip(self.clusters, self.children, strict=True)
            if child is not None and child.state is EventState.QUEUED and c.state not in FINAL
        ]
        self.cancel_message = why.replace("not started", "cancelled", 1)
        if self.cancel or self.in_flight():
            running = self.in_flight()
            if not self.record.cancel_requested:
                self.state, self.message = RolloutState.RUNNING, f"{ending}; {running} finishing"
            else:
                self.state = RolloutState.RUNNING
            return
        if self.record.cancel_requested:
            self.end(RolloutState.CANCELLED, self.record.message)
        else:
            stopped = sum(1 for c in self.clusters if c.state == EventState.CANCELLED.value)
            rest = f": {_clusters(stopped)} not started or cancelled" if stopped else ""
            self.end(RolloutState.FAILED, f"{ending}{rest}")
