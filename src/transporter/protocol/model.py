"""What an event is, what becomes of it, and who the agents are. Plain immutable data."""

from __future__ import annotations

from enum import StrEnum
from typing import Final, Literal

import attrs


class EventState(StrEnum):
    """Where an event stands for its agent.

    ``queued`` (agent offline or busy) → ``assigned`` (sent, not yet acknowledged) →
    ``in_progress`` (the agent is working through its phases) → ``completed`` | ``failed`` |
    ``expired`` (its TTL passed before it could finish).
    """

    QUEUED = "queued"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    EXPIRED = "expired"

    @property
    def terminal(self) -> bool:
        return self in (EventState.COMPLETED, EventState.FAILED, EventState.EXPIRED)


class Phase(StrEnum):
    """The agent's steps through one event, reported as each begins."""

    RECEIVED = "received"
    VALIDATING = "validating"
    APPLYING = "applying"
    VERIFYING = "verifying"
    COMPLETED = "completed"
    FAILED = "failed"


class Action(StrEnum):
    APPLY = "apply"
    DELETE = "delete"


class ResourceStatus(StrEnum):
    """How one object of an event ended."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    DELETED = "deleted"
    NOT_FOUND = "not_found"
    FAILED = "failed"


class AgentStatus(StrEnum):
    CONNECTED = "connected"
    UNHEALTHY = "unhealthy"
    """Connected, but silent for the control plane's ``missed_heartbeats`` heartbeat intervals
    (two by default)."""
    DISCONNECTED = "disconnected"


EVENT_TYPE_K8S: Final = "k8s_resource"


@attrs.frozen
class K8sPayload:
    """Manifests to apply (or objects to delete) on the target agent's cluster."""

    manifests: tuple[str, ...] = attrs.field(repr=False)
    """YAML documents as submitted; each may hold several documents separated by ``---``.
    Left out of ``repr`` (so of tracebacks and debug logs): they may hold Secrets' values."""
    action: Action = Action.APPLY


@attrs.frozen
class Event:
    """One unit of work for one agent. Immutable once accepted."""

    id: str
    target_agent: str
    payload: K8sPayload
    ttl: int
    """Seconds after ``created_at`` by which the event must have finished, or it expires."""
    created_at: float
    """Unix time at which the control plane accepted it."""
    type: Literal["k8s_resource"] = EVENT_TYPE_K8S
    priority: int = 0
    labels: dict[str, str] = attrs.field(factory=dict)
    created_by: str = ""
    signature: str = ""
    """The control plane's Ed25519 signature over the fields above, base64; set when it accepts
    the event (:mod:`transporter.protocol.signing`), checked by the agent before anything else."""

    @property
    def expires_at(self) -> float:
        return self.created_at + self.ttl

    def same_request(self, other: Event) -> bool:
        """Whether ``other`` asks for the same thing (a repeated submit), whenever it came."""
        return attrs.evolve(other, created_at=self.created_at, signature=self.signature) == self


@attrs.frozen
class ResourceResult:
    """The outcome for one object, with the API server's own message when it failed."""

    api_version: str
    kind: str
    name: str
    namespace: str | None
    status: ResourceStatus
    message: str = ""


@attrs.frozen
class TimelineEntry:
    at: float
    state: EventState
    phase: Phase | None = None
    message: str = ""


@attrs.frozen
class EventRecord:
    """An event and everything known about its progress: what ``GET /events/{id}`` shows."""

    event: Event
    seq: int
    """Order of acceptance by the store; the outbox delivers in this order."""
    state: EventState = EventState.QUEUED
    phase: Phase | None = None
    message: str = ""
    resources: tuple[ResourceResult, ...] = ()
    timeline: tuple[TimelineEntry, ...] = ()
    updated_at: float = 0.0


@attrs.frozen
class AgentInfo:
    """What an agent says about itself when it registers."""

    id: str
    name: str = ""
    cluster_name: str = ""
    provider: str = ""
    region: str = ""
    version: str = ""
    labels: dict[str, str] = attrs.field(factory=dict)
    capabilities: tuple[str, ...] = ()


@attrs.frozen
class AgentRecord:
    info: AgentInfo
    status: AgentStatus
    connected_since: float | None = None
    last_heartbeat: float | None = None
    updated_at: float = 0.0


@attrs.frozen
class AuditEntry:
    """Who asked for what, where it ran and how it ended."""

    at: float
    action: str
    """``event.accepted``, ``event.delivered``, ``event.completed`` …, ``agent.connected`` …"""
    actor: str = ""
    agent_id: str = ""
    event_id: str = ""
    detail: str = ""
    seq: int = 0
    """Assigned by the store; 0 before it is stored. 1, 2, 3 … with no gaps."""
    prev_hash: str = ""
    """The ``hash`` of the record before this one (64 zeros for the first); set by the store."""
    hash: str = ""
    """SHA-256 of this record, ``prev_hash`` included; set by the store. The audit log is a hash
    chain: :mod:`transporter.security.audit_chain` defines it."""
