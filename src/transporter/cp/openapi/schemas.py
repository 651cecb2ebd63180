"""``components.schemas``: the bodies the API reads and writes, named for ``$ref``."""

from __future__ import annotations

from typing import Any

from transporter.cp.openapi.bounds import MAX_CREATED_BY, MAX_PRIORITY, MIN_PRIORITY
from transporter.cp.openapi.parts import (
    BOOLEAN,
    INTEGER,
    LABELS,
    NUMBER,
    STRING,
    array,
    nullable,
    obj,
    ref,
)
from transporter.cp.openapi.rollout_schemas import rollout_schemas
from transporter.protocol import ids
from transporter.protocol.model import (
    EVENT_TYPE_K8S,
    Action,
    AgentStatus,
    EventState,
    Phase,
    Readiness,
    ResourceStatus,
)
from transporter.protocol.submission import (
    DEFAULT_TTL,
    MAX_EVENT_BYTES,
    MAX_MANIFEST_BYTES,
    MAX_MANIFESTS,
    MAX_READY_TIMEOUT,
    MAX_TTL,
    SUBMITTED_ACTIONS,
    SUBMITTED_EVENT_ID,
)
from transporter.protocol.yaml_reader import MAX_ALIAS_NODES, MAX_DEPTH, MAX_EXPANDED_BYTES
from transporter.security import tokens

STATE: dict[str, Any] = {"enum": [s.value for s in EventState]}
_PHASE = nullable({"enum": [p.value for p in Phase]})
_ACTIONS = [a.value for a in Action]


def schemas() -> dict[str, Any]:
    return {
        "Error": _error(),
        "EventSubmission": _submission(),
        "Submitted": _submitted(),
        "Event": _event(),
        **_records(),
        **rollout_schemas(_payload_request()),
        **_agents(),
        **_audit(),
    }


def _error() -> dict[str, Any]:
    return obj(
        ["error", "message"],
        error={"type": "string", "description": "A code to act on."},
        message={"type": "string", "description": "What was wrong, for a person."},
        field={
            "type": "string",
            "description": "Where in a submitted event (dotted path), when it is at fault.",
        },
    )


def _payload_request() -> dict[str, Any]:
    # Every bound the validators apply, so that a producer can stay inside them without trying.
    return obj(
        ["manifests"],
        manifests={
            "type": "array",
            "description": (
                "YAML texts, each of one or more documents: together at most "
                f"{MAX_MANIFEST_BYTES} bytes (UTF-8), and the whole event at most "
                f"{MAX_EVENT_BYTES} bytes as JSON; nesting at most {MAX_DEPTH} levels; "
                f"aliases standing for at most {MAX_ALIAS_NODES} nodes, and at most "
                f"{MAX_EXPANDED_BYTES} bytes once every alias is expanded, in all. Over a "
                "size limit: 413; over a YAML bound: 400."
            ),
            "minItems": 1,
            "maxItems": MAX_MANIFESTS,
            "items": {"type": "string", "minLength": 1},
        },
        action={"enum": [a.value for a in SUBMITTED_ACTIONS], "default": Action.APPLY.value},
        wait_ready={
            **BOOLEAN,
            "default": False,
            "description": (
                "Only with the action apply: the agent's verifying phase waits until every "
                "applied object is ready (kstatus rules), at most ``ready_timeout`` seconds."
            ),
        },
        ready_timeout={
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_READY_TIMEOUT,
            "description": "Only with ``wait_ready: true``; default: the agent's (300).",
        },
    )


def _submission() -> dict[str, Any]:
    priority = {"type": "integer", "minimum": MIN_PRIORITY, "maximum": MAX_PRIORITY, "default": 0}
    submission = obj(
        ["target_agent", "payload"],
        id={
            "type": "string",
            "pattern": SUBMITTED_EVENT_ID,
            "description": "Default: a new UUID. No '_': it is reserved for rollouts' child"
            " events (``<rollout>_<agent>``).",
        },
        type={"const": EVENT_TYPE_K8S},
        target_agent={"type": "string", "pattern": ids.AGENT_ID},
        payload=_payload_request(),
        ttl={"type": "integer", "minimum": 1, "maximum": MAX_TTL, "default": DEFAULT_TTL},
        priority=priority,
        labels=LABELS,
    )
    # Not among the properties: with authentication on (the usual case) setting it is refused.
    submission["description"] = (
        "An event's ``created_by`` is the submitting token's identity "
        f"(``{tokens.IDENTITY_PREFIX}NAME``): a submission that sets it is refused (400, field "
        "``created_by``). Only a control plane run with ``--insecure-no-auth`` takes it from "
        f"here: a string of at most {MAX_CREATED_BY} characters."
    )
    return submission


def _submitted() -> dict[str, Any]:
    return obj(
        ["event_id", "status", "agent_known"],
        event_id=STRING,
        status={"enum": ["accepted", "exists"]},
        agent_known=BOOLEAN,
        state={**STATE, "description": "With ``exists``: where the stored event stands."},
    )


def _event() -> dict[str, Any]:
    """An event as answered: every field present, manifests redacted."""
    manifests = {
        "type": "array",
        "items": STRING,
        "description": (
            "As submitted, except that the values under data and stringData of every "
            "Secret are shown as <redacted> (such a manifest is written out again). An empty "
            "list where they were left out (GET /events/{event_id} with wait): an event "
            "always has at least one."
        ),
    }
    signature = {
        "type": "string",
        "description": (
            "The control plane's Ed25519 signature of the event as submitted (base64), "
            "which its agent checks before anything else."
        ),
    }
    # wait_ready, ready_timeout, expect and rollout_id only when set (older events lack them).
    payload = obj(
        ["manifests", "action"],
        manifests=manifests,
        action={"enum": _ACTIONS},
        wait_ready=BOOLEAN,
        ready_timeout=INTEGER,
        expect={**LABELS, "description": "Applying a plan: object key to fingerprint."},
    )
    fields = ["id", "target_agent", "payload", "ttl", "created_at", "type", "priority", "labels"]
    return obj(
        [*fields, "created_by", "signature"],
        id=STRING,
        target_agent=STRING,
        payload=payload,
        ttl=INTEGER,
        created_at=NUMBER,
        type={"const": EVENT_TYPE_K8S},
        priority=INTEGER,
        labels=LABELS,
        created_by=STRING,
        rollout_id={**STRING, "description": "The rollout or plan it is part of."},
        signature=signature,
    )


def _records() -> dict[str, Any]:
    """An event with where it stands: per resource, per phase, and a page of them."""
    return {
        "ResourceResult": obj(
            ["api_version", "kind", "name", "namespace", "status", "message"],
            api_version=STRING,
            kind=STRING,
            name=STRING,
            namespace=nullable(STRING),
            status={"enum": [s.value for s in ResourceStatus]},
            message=STRING,
            ready=nullable({"enum": [r.value for r in Readiness]}),
            diff={
                **array(ref("FieldChange")),
                "description": "A plan's would_change: the fields; a Secret's values redacted.",
            },
            fingerprint=STRING,
        ),
        "FieldChange": obj(
            ["path", "op", "old", "new"],
            path=STRING,
            op={"enum": ["add", "remove", "change"]},
            old=STRING,
            new=STRING,
        ),
        "TimelineEntry": obj(None, at=NUMBER, state=STATE, phase=_PHASE, message=STRING),
        "EventRecord": obj(
            None,
            event=ref("Event"),
            seq=INTEGER,
            state=STATE,
            phase=_PHASE,
            message=STRING,
            resources=array(ref("ResourceResult")),
            timeline=array(ref("TimelineEntry")),
            updated_at=NUMBER,
        ),
        "EventPage": obj(None, items=array(ref("EventRecord")), cursor=nullable(STRING)),
    }


def _agents() -> dict[str, Any]:
    return {
        "AgentInfo": obj(
            None,
            id=STRING,
            name=STRING,
            cluster_name=STRING,
            provider=STRING,
            region=STRING,
            version=STRING,
            labels=LABELS,
            capabilities=array(STRING),
        ),
        "Agent": obj(
            None,
            info=ref("AgentInfo"),
            status={"enum": [s.value for s in AgentStatus]},
            connected_since=nullable(NUMBER),
            last_heartbeat=nullable(NUMBER),
            updated_at=NUMBER,
        ),
        "AgentList": obj(None, items=array(ref("Agent"))),
    }


def _audit() -> dict[str, Any]:
    """An entry of the hash-chained audit log, and a page of them."""
    return {
        "AuditEntry": obj(
            ["at", "action", "actor", "agent_id", "event_id", "detail", "seq"],
            at=NUMBER,
            action=STRING,
            actor=STRING,
            agent_id=STRING,
            event_id=STRING,
            detail=STRING,
            seq=INTEGER,
            prev_hash={"type": "string", "description": "``hash`` of the entry before this one."},
            hash={
                "type": "string",
                "description": "SHA-256 of this entry, ``prev_hash`` included.",
            },
        ),
        "AuditPage": obj(None, items=array(ref("AuditEntry")), cursor=nullable(STRING)),
    }
