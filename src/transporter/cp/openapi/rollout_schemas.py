"""``components.schemas`` of rollouts and plans: what is submitted, and what is answered.

Every bound comes from the validator (:mod:`transporter.protocol.rollout_request`). A schema here
may be looser than the validator where JSON Schema cannot say a rule (a label selector's syntax,
``ready_timeout`` only with ``wait_ready``), never stricter: what it refuses, the API refuses.
"""

from __future__ import annotations

from typing import Any

from transporter.cp.openapi.bounds import MAX_PRIORITY, MAX_WAVE, MIN_PRIORITY
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
from transporter.protocol import ids
from transporter.protocol.model import EVENT_TYPE_K8S
from transporter.protocol.rollout import PENDING, RolloutKind, RolloutState
from transporter.protocol.rollout_request import (
    DEFAULT_PLAN_TTL,
    MAX_FAILURES,
    MAX_PARALLEL,
    MAX_PAUSE,
    MAX_TARGETS,
    MAX_WAVES,
    PERCENT,
    ROLLOUT_ID,
)
from transporter.protocol.selector import MAX_TEXT
from transporter.protocol.submission import DEFAULT_TTL, MAX_READY_TIMEOUT, MAX_TTL

ROLLOUT_STATE: dict[str, Any] = {"enum": [s.value for s in RolloutState]}
ROLLOUT_KIND: dict[str, Any] = {"enum": [k.value for k in RolloutKind]}
SELECTOR: dict[str, Any] = {
    "type": "string",
    "maxLength": MAX_TEXT,
    "description": "A label selector over agents' labels, as ``kubectl get -l`` takes.",
}
_ID = {"type": "string", "pattern": ROLLOUT_ID, "description": "Default: a new UUID."}
_TARGETS = {"type": "array", "minItems": 1, "maxItems": MAX_TARGETS, "uniqueItems": True}


def rollout_schemas(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload``: a submission's payload schema (shared with single events)."""
    return {
        "Wave": _wave(),
        "Strategy": _strategy(),
        "RolloutSubmission": _submission(payload, rollout=True),
        "PlanSubmission": _submission(_plan_payload(payload), rollout=False),
        "RolloutAccepted": _accepted("rollout_id", waves=True),
        "RolloutExists": _exists("rollout_id"),
        "PlanAccepted": _accepted("plan_id", waves=False),
        "PlanExists": _exists("plan_id"),
        "PlanApply": _plan_apply(),
        "RolloutSummary": obj(None, **_summary()),
        "RolloutPage": obj(None, items=array(ref("RolloutSummary")), cursor=nullable(STRING)),
        "Rollout": obj(None, **_detail()),
        "Plan": obj(None, **_plan()),
    }


def _wave() -> dict[str, Any]:
    return obj(
        [],
        selector={**SELECTOR, "default": "", "description": "Empty: only in the last wave."},
        pause={
            "type": "integer",
            "minimum": 0,
            "maximum": MAX_PAUSE,
            "default": 0,
            "description": "Seconds after the wave before: 0 for the first wave (400 otherwise).",
        },
        approval={**BOOLEAN, "default": False},
    )


def _strategy() -> dict[str, Any]:
    parallel = {
        "anyOf": [
            {"type": "integer", "minimum": 0, "maximum": MAX_PARALLEL},
            {"type": "string", "pattern": PERCENT},
        ],
        "default": 0,
        "description": "Clusters working at once (0: no limit), or a percentage of them.",
    }
    return obj(
        [],
        max_parallel=parallel,
        max_failures={"type": "integer", "minimum": 0, "maximum": MAX_FAILURES, "default": 0},
        waves={"type": "array", "maxItems": MAX_WAVES, "items": ref("Wave")},
    )


def _plan_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """A plan waits for nothing: ``wait_ready`` is given when it is applied."""
    properties = dict(payload["properties"])
    del properties["ready_timeout"]
    properties["wait_ready"] = {"const": False}
    return {**payload, "properties": properties}


def _submission(payload: dict[str, Any], *, rollout: bool) -> dict[str, Any]:
    priority = {"type": "integer", "minimum": MIN_PRIORITY, "maximum": MAX_PRIORITY, "default": 0}
    ttl = DEFAULT_TTL if rollout else DEFAULT_PLAN_TTL
    standing = {**BOOLEAN, "description": "Only with ``selector`` (400 with target_agents)."}
    extra = {"strategy": ref("Strategy"), "standing": standing, "allow_empty": BOOLEAN}
    schema = obj(
        ["payload"],
        id=_ID,
        type={"const": EVENT_TYPE_K8S},
        target_agents={**_TARGETS, "items": {"type": "string", "pattern": ids.AGENT_ID}},
        selector=SELECTOR,
        payload=payload,
        ttl={"type": "integer", "minimum": 1, "maximum": MAX_TTL, "default": ttl},
        priority=priority,
        labels=LABELS,
        **(extra if rollout else {}),
    )
    schema["oneOf"] = [{"required": ["target_agents"]}, {"required": ["selector"]}]
    schema["description"] = (
        "Exactly one of ``target_agents`` and ``selector``. Each matched agent gets one child "
        "event (``<id>_<agent id>``), which must fit the agent channel as a single event must."
        if rollout
        else "A dry run on every matched agent; ``ttl``: the plan's lifetime."
    ) + " ``created_by`` is the submitting token's identity, as for a single event."
    return schema


def _accepted(name: str, *, waves: bool) -> dict[str, Any]:
    agents = array(STRING)
    extra = {"waves": array(array(STRING))} if waves else {}
    return obj(None, **{name: STRING}, status={"const": "accepted"}, agents=agents, **extra)


def _exists(name: str) -> dict[str, Any]:
    return obj(None, **{name: STRING}, status={"const": "exists"}, state=ROLLOUT_STATE)


def _plan_apply() -> dict[str, Any]:
    return obj(
        [],
        id=_ID,
        strategy=ref("Strategy"),
        wait_ready=BOOLEAN,
        ready_timeout={"type": "integer", "minimum": 1, "maximum": MAX_READY_TIMEOUT},
        ttl={"type": "integer", "minimum": 1, "maximum": MAX_TTL, "default": DEFAULT_TTL},
    )


def _summary() -> dict[str, Any]:
    return {
        "id": STRING,
        "kind": ROLLOUT_KIND,
        "state": ROLLOUT_STATE,
        "message": STRING,
        "created_at": NUMBER,
        "created_by": STRING,
        "selector": STRING,
        "agents": {**array(STRING), "description": "The agents named (none with a selector)."},
        "standing": BOOLEAN,
        "wave": {"type": "integer", "minimum": 0, "maximum": MAX_WAVE},
        "waves": {"type": "integer", "minimum": 1, "maximum": MAX_WAVE + 1},
        "counts": {
            "type": "object",
            "additionalProperties": INTEGER,
            "description": f"Clusters per state (``{PENDING}``, an event's state, ``drifted``).",
        },
        "total": INTEGER,
        "updated_at": NUMBER,
    }


def _cluster() -> dict[str, Any]:
    return {
        "agent_id": STRING,
        "wave": INTEGER,
        "event_id": STRING,
        "state": STRING,
        "phase": STRING,
        "message": STRING,
        "updated_at": NUMBER,
    }


def _detail() -> dict[str, Any]:
    entry = obj(None, at=NUMBER, what=STRING, message=STRING, wave=nullable(INTEGER))
    strategy = obj(
        None,
        max_parallel={"anyOf": [INTEGER, STRING]},
        max_failures=INTEGER,
        waves=array(obj(None, selector=STRING, pause=INTEGER, approval=BOOLEAN)),
    )
    return {
        **_summary(),
        "strategy": strategy,
        "clusters": array(obj(None, **_cluster())),
        "timeline": array(entry),
        "plan_id": STRING,
    }


def _plan() -> dict[str, Any]:
    cluster = obj(None, **_cluster(), resources=array(ref("ResourceResult")))
    results_for = {
        "type": "integer",
        "description": "How many clusters (the first, in ``clusters``) have their results here.",
    }
    return {
        **_detail(),
        "clusters": array(cluster),
        "expires_at": NUMBER,
        "results_for": results_for,
    }
