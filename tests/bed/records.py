"""Events, updates and agents for the store tests, built with every field set."""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from transporter.protocol.model import (
    Action,
    AgentInfo,
    AgentRecord,
    AgentStatus,
    AuditEntry,
    Event,
    EventRecord,
    EventState,
    K8sPayload,
    Phase,
    ResourceResult,
    ResourceStatus,
)
from transporter.protocol.status import StatusUpdate
from transporter.store import Store

SMALL_EVENT = Event(
    id="e-1",
    target_agent="agent-1",
    payload=K8sPayload(("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n",)),
    ttl=60,
    created_at=1000.0,
    labels={"team": "platform"},
    created_by="ci",
)
"""One small event with its optional fields set, for the protocol's unit tests."""

T0 = 1_700_000_000.123456
"""A creation time with a fraction that a float-formatting slip would lose."""

MANIFEST = """apiVersion: v1
kind: ConfigMap
metadata:
  name: café-☃
  namespace: default
data:
  quote: "it's \\"quoted\\""
"""


def event(
    event_id: str = "ev-1",
    agent: str = "agent-a",
    *,
    created_at: float = T0,
    ttl: int = 600,
    manifests: tuple[str, ...] = (MANIFEST, "kind: Namespace\n---\nkind: Secret\n"),
) -> Event:
    return Event(
        id=event_id,
        target_agent=agent,
        payload=K8sPayload(manifests=manifests, action=Action.DELETE),
        ttl=ttl,
        created_at=created_at,
        priority=7,
        labels={"team": "platform", "env": "prod"},
        created_by="alice",
    )


def accepted_audit(ev: Event) -> AuditEntry:
    return AuditEntry(
        at=ev.created_at,
        action="event.accepted",
        actor=ev.created_by,
        agent_id=ev.target_agent,
        event_id=ev.id,
        detail=f"{len(ev.payload.manifests)} manifests",
    )


def unsealed(entry: AuditEntry) -> AuditEntry:
    """``entry`` without what the store adds when it appends it (seq and the chain's hashes)."""
    return attrs.evolve(entry, seq=0, prev_hash="", hash="")


def update(
    state: EventState,
    at: float,
    phase: Phase | None = None,
    message: str = "",
    resources: tuple[ResourceResult, ...] | None = None,
) -> StatusUpdate:
    return StatusUpdate(at=at, state=state, phase=phase, message=message, resources=resources)


RESULTS = (
    ResourceResult("v1", "ConfigMap", "café-☃", "default", ResourceStatus.CREATED),
    ResourceResult(
        "v1", "Secret", "s", None, ResourceStatus.FAILED, 'admission webhook "x" denied it'
    ),
)

# One event's whole way, as the dispatcher and an agent report it.
JOURNEY = (
    update(EventState.ASSIGNED, T0 + 1),
    update(EventState.IN_PROGRESS, T0 + 2, Phase.RECEIVED),
    update(EventState.IN_PROGRESS, T0 + 3, Phase.VALIDATING),
    update(EventState.IN_PROGRESS, T0 + 4, Phase.APPLYING),
    update(EventState.IN_PROGRESS, T0 + 5, Phase.VERIFYING),
    update(EventState.COMPLETED, T0 + 6, Phase.COMPLETED, "2 resources", RESULTS),
)


def agent(agent_id: str, status: AgentStatus = AgentStatus.CONNECTED) -> AgentRecord:
    return AgentRecord(
        info=AgentInfo(
            id=agent_id,
            name=f"{agent_id} name",
            cluster_name=f"cluster of {agent_id}",
            provider="kind",
            region="eu-west",
            version="1.2.3",
            labels={"env": "prod"},
            capabilities=("apply", "delete"),
        ),
        status=status,
        connected_since=T0,
        last_heartbeat=T0 + 10.5,
        updated_at=T0 + 10.5,
    )


async def submitted(store: Store, events: Sequence[Event]) -> list[EventRecord]:
    """Store the events at once (``submit_many``, each with its accepted audit entry), every
    one new: their records, in order."""
    results = await store.submit_many([(ev, accepted_audit(ev)) for ev in events])
    records = []
    for result in results:
        assert not isinstance(result, Exception)
        records.append(result[0])
    return records
