"""A rollout's children kept in memory for the pure tests of :mod:`transporter.cp.rollout.step`:
what the store would hold after the engine carried out each step's moves."""

from __future__ import annotations

import attrs

from transporter.cp.rollout import targets
from transporter.cp.rollout.step import Moves, settle, step
from transporter.protocol.model import (
    AgentInfo,
    AgentRecord,
    AgentStatus,
    EventRecord,
    EventState,
    K8sPayload,
    ResourceResult,
)
from transporter.protocol.rollout import (
    RolloutKind,
    RolloutRecord,
    RolloutSpec,
    RolloutState,
    Strategy,
)
from transporter.protocol.status import StatusUpdate, accepted, advance
from transporter.store.base import EventProgress

T0 = 1_700_000_000.0
MANIFEST = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: default}\n"


def agents(**labels: dict[str, str]) -> list[AgentRecord]:
    """Agents by id (``_`` in a keyword becomes ``-``) with these labels."""
    return [
        AgentRecord(AgentInfo(agent.replace("_", "-"), labels=given), AgentStatus.CONNECTED)
        for agent, given in labels.items()
    ]


DEFAULT = Strategy()


def spec(
    rollout_id: str = "r1",
    *,
    agents: tuple[str, ...] = (),
    selector: str = "",
    strategy: Strategy = DEFAULT,
    standing: bool = False,
    allow_empty: bool = False,
    ttl: int = 600,
    kind: RolloutKind = RolloutKind.APPLY,
    scope: tuple[str, ...] = (),
    created_at: float = T0,
) -> RolloutSpec:
    """A rollout's spec of one ConfigMap, by alice."""
    return RolloutSpec(
        id=rollout_id,
        kind=kind,
        payload=K8sPayload((MANIFEST,)),
        created_at=created_at,
        ttl=ttl,
        created_by="alice",
        selector=selector,
        agents=agents,
        strategy=strategy,
        standing=standing,
        allow_empty=allow_empty,
        scope=scope,
    )


def record(given: RolloutSpec, fleet: list[AgentRecord]) -> RolloutRecord:
    clusters = targets.clusters(given, targets.matched(given, fleet))
    return RolloutRecord(given, clusters=tuple(clusters), version=1)


@attrs.define
class Fleet:
    """The store's children, and the record as the last step left it."""

    record: RolloutRecord
    events: dict[str, EventRecord] = attrs.field(factory=dict)
    now: float = T0
    last: Moves | None = None

    def children(self) -> list[EventProgress | None]:
        """What the engine reads of the children (the store's ``event_progress``)."""
        found = [self.events.get(c.event_id) for c in self.record.clusters]
        return [None if child is None else EventProgress.of(child) for child in found]

    def step(self, now: float | None = None) -> Moves:
        """One step, carried out: children stored queued, queued ones cancelled."""
        if now is not None:
            self.now = now
        moves = step(self.record, self.children(), self.now)
        started = []
        for event in moves.start:
            assert event.id not in self.events, f"{event.id} started twice"
            started.append(accepted(EventRecord(event, seq=len(self.events) + 1)))
            self.events[event.id] = started[-1]
        for event_id in moves.cancel:
            self.set(event_id, EventState.CANCELLED, moves.cancel_message)
        self.record = settle(moves.record, started)
        self.last = moves
        return moves

    def set(
        self,
        event_id: str,
        state: EventState,
        message: str = "",
        resources: tuple[ResourceResult, ...] | None = None,
    ) -> bool:
        if not event_id.startswith("r1_"):
            event_id = f"r1_{event_id}"
        update = StatusUpdate(self.now, state, message=message, resources=resources)
        moved = advance(self.events[event_id], update)
        if moved is not None:
            self.events[event_id] = moved
        return moved is not None

    def started(self) -> list[str]:
        return sorted(e.removeprefix("r1_") for e in self.events)

    def state(self) -> RolloutState:
        """The record's state (a call: mypy does not narrow it from one assert to the next)."""
        return self.record.state

    def states(self) -> dict[str, str]:
        return {c.agent_id: c.state for c in self.record.clusters}
