"""What an event is, what becomes of it, and who the agents are. Plain immutable data."""

from __future__ import annotations

from enum import StrEnum
from typing import Final, Literal

import attrs


class EventState(StrEnum):
    """Where an event stands for its agent.

    ``queued`` (agent offline or busy) → ``assigned`` (sent, not yet acknowledged) →
    ``in_progress`` (the agent is working through its phases) → ``completed`` | ``failed`` |
    ``expired`` (its TTL passed before it could finish) | ``cancelled`` (cancelled while still
    queued: it was never sent, so nothing of it ran).
    """

    QUEUED = "queued"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in _FINAL_EVENT_STATES


class Phase(StrEnum):
    """The agent's steps through one event, reported as each begins."""

    RECEIVED = "received"
    VALIDATING = "validating"
    APPLYING = "applying"
    VERIFYING = "verifying"
    COMPLETED = "completed"
    FAILED = "failed"


_FINAL_EVENT_STATES: Final = frozenset(
    {EventState.COMPLETED, EventState.FAILED, EventState.EXPIRED, EventState.CANCELLED}
)


class Action(StrEnum):
    APPLY = "apply"
    DELETE = "delete"
    PLAN = "plan"
    """A server-side dry run of the manifests: what an apply would do, object by object, with
    the fields it would change; nothing is written (:class:`ResourceStatus` ``would_*``)."""


class ResourceStatus(StrEnum):
    """How one object of an event ended."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    DELETED = "deleted"
    NOT_FOUND = "not_found"
    FAILED = "failed"
    DRIFTED = "drifted"
    """Applying a plan: the object changed on the cluster since it was planned (or was not in
    the plan), so it was not touched. Plan again."""
    WOULD_CREATE = "would_create"
    """A plan: the object does not exist; an apply would create it."""
    WOULD_CHANGE = "would_change"
    """A plan: an apply would change the fields in the result's ``diff``."""
    WOULD_DELETE = "would_delete"
    """A plan of a delete: the object exists and would be deleted."""
    REFUSED = "refused"
    """A plan: the agent's policy refuses the object (the message says why)."""


class Readiness(StrEnum):
    """Whether an applied object is ready, by the rules of kstatus (``wait_ready``)."""

    CURRENT = "current"
    IN_PROGRESS = "in_progress"
    FAILED = "failed"
    UNKNOWN = "unknown"


class AgentStatus(StrEnum):
    CONNECTED = "connected"
    UNHEALTHY = "unhealthy"
    """Connected, but silent for the control plane's ``missed_heartbeats`` heartbeat intervals
    (two by default)."""
    DISCONNECTED = "disconnected"


EVENT_TYPE_K8S: Final = "k8s_resource"


@attrs.frozen
class K8sPayload:
    """Manifests to apply (or objects to delete, or to plan) on the target agent's cluster."""

    manifests: tuple[str, ...] = attrs.field(repr=False)
    """YAML documents as submitted; each may hold several documents separated by ``---``.
    Left out of ``repr`` (so of tracebacks and debug logs): they may hold Secrets' values."""
    action: Action = Action.APPLY
    wait_ready: bool = False
    """Apply: the verifying phase waits until every applied object is ready (kstatus rules),
    at most ``ready_timeout`` seconds, and fails with the object's own message if not."""
    ready_timeout: int = 0
    """Seconds the verifying phase waits with ``wait_ready`` (0: the default, 300)."""
    plan_of: Action = Action.APPLY
    """Action ``plan``: what is planned, an apply (``would_create`` / ``would_change`` /
    ``unchanged``) or a delete (``would_delete`` / ``not_found``), each as the policy judges it."""
    expect: dict[str, str] = attrs.field(factory=dict)
    """Applying a plan: for each planned object (:func:`object_key`), the fingerprint of the
    object as the plan saw it on this cluster (``absent``: it did not exist). An object whose
    live fingerprint differs now, or that is not listed, is not touched: ``drifted``. Empty:
    not a plan's apply, every object is applied."""


ABSENT: Final = "absent"
"""The fingerprint of an object that does not exist (:attr:`K8sPayload.expect`)."""


def object_key(api_version: str, kind: str, namespace: str | None, name: str) -> str:
    """``group/kind/namespace/name`` (the group without version; ``-`` for no namespace): how a
    plan names an object, whatever version of its kind it was submitted in."""
    group = api_version.rpartition("/")[0]
    return f"{group}/{kind}/{namespace or '-'}/{name}"


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
    rollout_id: str = ""
    """The rollout (or plan) this event is one cluster's part of; empty for a single event."""
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
class FieldChange:
    """One field a plan would change: ``path`` like ``spec.replicas`` or
    ``spec.template.spec.containers[0].image``; ``old`` and ``new`` are compact JSON, cut to a
    bound, ``""`` when absent on that side; a Secret's values are ``<redacted>``."""

    path: str
    op: Literal["add", "remove", "change"]
    old: str = ""
    new: str = ""


@attrs.frozen
class ResourceResult:
    """The outcome for one object, with the API server's own message when it failed."""

    api_version: str
    kind: str
    name: str
    namespace: str | None
    status: ResourceStatus
    message: str = ""
    ready: Readiness | None = None
    """With ``wait_ready``: where the object stands (progress reports, then its final word)."""
    diff: tuple[FieldChange, ...] = ()
    """A plan's ``would_change``: the fields that would change."""
    fingerprint: str = ""
    """A plan: the fingerprint of the live object the plan saw (``absent``), which applying the
    plan expects to find again (:attr:`K8sPayload.expect`)."""


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
