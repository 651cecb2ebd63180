"""The control plane's HTTP API described in OpenAPI 3.1, served at ``GET /openapi.json``.

Written by hand to match the handlers in :mod:`transporter.cp.api`. Two tests keep it honest:
``tests/badinput/test_openapi.py`` compares its paths and methods with the app's routes, and
``tests/badinput/test_schemathesis.py`` runs schemathesis over it against a real control plane
(answers must match the statuses and schemas written here).
"""

from __future__ import annotations

from typing import Any

from transporter.protocol import ids
from transporter.protocol.model import (
    EVENT_TYPE_K8S,
    Action,
    AgentStatus,
    EventState,
    Phase,
    ResourceStatus,
)
from transporter.protocol.submission import (
    DEFAULT_TTL,
    MAX_EVENT_BYTES,
    MAX_MANIFEST_BYTES,
    MAX_MANIFESTS,
    MAX_TTL,
)
from transporter.protocol.yaml_reader import MAX_ALIAS_NODES, MAX_DEPTH, MAX_EXPANDED_BYTES

JSON = "application/json"


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(required: list[str] | None, **properties: Any) -> dict[str, Any]:
    """A closed object: these properties only; ``required`` ones always (``None``: all)."""
    return {
        "type": "object",
        "required": list(properties) if required is None else required,
        "properties": properties,
        "additionalProperties": False,
    }


def _answer(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _answer(description, _ref("Error"))


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


_STRING = {"type": "string"}
_NUMBER = {"type": "number"}
_INTEGER = {"type": "integer"}
_LABELS = {"type": "object", "additionalProperties": _STRING}
_ID_PATTERN = ids.EVENT_ID
_AGENT_PATTERN = ids.AGENT_ID

_UNAVAILABLE = _error("The store did not answer (``store_unavailable``); try again.")
_BAD_QUERY = _error("A query parameter is not valid (``invalid_query``).")


def _schemas() -> dict[str, Any]:
    payload_request = _obj(
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
        action={"enum": [a.value for a in Action], "default": Action.APPLY.value},
    )
    submission = _obj(
        ["target_agent", "payload"],
        id={"type": "string", "pattern": _ID_PATTERN, "description": "Default: a new UUID."},
        type={"const": EVENT_TYPE_K8S},
        target_agent={"type": "string", "pattern": _AGENT_PATTERN},
        payload=payload_request,
        ttl={"type": "integer", "minimum": 1, "maximum": MAX_TTL, "default": DEFAULT_TTL},
        priority={"type": "integer", "minimum": -1000, "maximum": 1000, "default": 0},
        labels=_LABELS,
    )
    submission["description"] = (
        "An event's ``created_by`` is the submitting token's identity (``token:NAME``): a "
        "submission that sets it is refused (400, field ``created_by``). Only a control plane "
        "run with ``--insecure-no-auth`` takes it from here: a string of at most 256 characters."
    )
    event = _obj(
        None,
        id=_STRING,
        target_agent=_STRING,
        payload=_obj(
            None,
            manifests={
                "type": "array",
                "items": _STRING,
                "description": (
                    "As submitted, except that the values under data and stringData of every "
                    "Secret are shown as <redacted> (such a manifest is written out again)."
                ),
            },
            action={"enum": [a.value for a in Action]},
        ),
        ttl=_INTEGER,
        created_at=_NUMBER,
        type={"const": EVENT_TYPE_K8S},
        priority=_INTEGER,
        labels=_LABELS,
        created_by=_STRING,
        signature={
            "type": "string",
            "description": (
                "The control plane's Ed25519 signature of the event as submitted (base64), "
                "which its agent checks before anything else."
            ),
        },
    )
    state = {"enum": [s.value for s in EventState]}
    phase = _nullable({"enum": [p.value for p in Phase]})
    return {
        "Error": {
            **_obj(
                ["error", "message"],
                error={"type": "string", "description": "A code to act on."},
                message={"type": "string", "description": "What was wrong, for a person."},
                field={
                    "type": "string",
                    "description": "Where in a submitted event (dotted path), when it is at fault.",
                },
            ),
        },
        "EventSubmission": submission,
        "Submitted": _obj(
            ["event_id", "status", "agent_known"],
            event_id=_STRING,
            status={"enum": ["accepted", "exists"]},
            agent_known={"type": "boolean"},
            state={**state, "description": "With ``exists``: where the stored event stands."},
        ),
        "Event": event,
        "ResourceResult": _obj(
            None,
            api_version=_STRING,
            kind=_STRING,
            name=_STRING,
            namespace=_nullable(_STRING),
            status={"enum": [s.value for s in ResourceStatus]},
            message=_STRING,
        ),
        "TimelineEntry": _obj(None, at=_NUMBER, state=state, phase=phase, message=_STRING),
        "EventRecord": _obj(
            None,
            event=_ref("Event"),
            seq=_INTEGER,
            state=state,
            phase=phase,
            message=_STRING,
            resources={"type": "array", "items": _ref("ResourceResult")},
            timeline={"type": "array", "items": _ref("TimelineEntry")},
            updated_at=_NUMBER,
        ),
        "EventPage": _obj(
            None,
            items={"type": "array", "items": _ref("EventRecord")},
            cursor=_nullable(_STRING),
        ),
        "AgentInfo": _obj(
            None,
            id=_STRING,
            name=_STRING,
            cluster_name=_STRING,
            provider=_STRING,
            region=_STRING,
            version=_STRING,
            labels=_LABELS,
            capabilities={"type": "array", "items": _STRING},
        ),
        "Agent": _obj(
            None,
            info=_ref("AgentInfo"),
            status={"enum": [s.value for s in AgentStatus]},
            connected_since=_nullable(_NUMBER),
            last_heartbeat=_nullable(_NUMBER),
            updated_at=_NUMBER,
        ),
        "AgentList": _obj(None, items={"type": "array", "items": _ref("Agent")}),
        "AuditEntry": _obj(
            ["at", "action", "actor", "agent_id", "event_id", "detail", "seq"],
            at=_NUMBER,
            action=_STRING,
            actor=_STRING,
            agent_id=_STRING,
            event_id=_STRING,
            detail=_STRING,
            seq=_INTEGER,
            prev_hash={"type": "string", "description": "``hash`` of the entry before this one."},
            hash={
                "type": "string",
                "description": "SHA-256 of this entry, ``prev_hash`` included.",
            },
        ),
        "AuditPage": _obj(
            None,
            items={"type": "array", "items": _ref("AuditEntry")},
            cursor=_nullable(_STRING),
        ),
    }


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _path(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": _STRING,
        "description": description,
    }


def _limit(default: int, max_limit: int) -> dict[str, Any]:
    schema = {"type": "integer", "minimum": 1, "maximum": max_limit, "default": default}
    return _query("limit", schema, "Items in one page.")


_CURSOR = _query("cursor", _STRING, "From the previous page's ``cursor``.")


def openapi_document(
    *, version: str, max_wait: float, max_limit: int, max_batch: int
) -> dict[str, Any]:
    """The document; the numbers are the handlers' own limits, passed in by :mod:`.api`."""
    submit_errors = {
        "400": _error("Not a valid event (``invalid_event``); ``field`` says where."),
        "409": _error("An event with this ``id`` exists with other content (``conflict``)."),
        "413": _error("Over a limit (``event_too_large``, or a body over the size limit)."),
        "503": _UNAVAILABLE,
    }
    batch_result = {
        "oneOf": [
            _obj(
                ["event_id", "status", "agent_known"],
                event_id=_STRING,
                status={"enum": ["accepted", "exists"]},
                agent_known={"type": "boolean"},
            ),
            _ref("Error"),
        ]
    }
    paths: dict[str, Any] = {
        "/events": {
            "post": {
                "operationId": "submitEvent",
                "summary": "Submit an event: stored durably, then answered.",
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": _ref("EventSubmission")}},
                },
                "responses": {
                    "202": _answer("Accepted and stored.", _ref("Submitted")),
                    "200": _answer(
                        "The same ``id`` and content again: nothing new stored.", _ref("Submitted")
                    ),
                    **submit_errors,
                },
            },
            "get": {
                "operationId": "listEvents",
                "summary": "Events, newest first, a page at a time.",
                "parameters": [
                    _query("agent", _STRING, "Only this agent's events."),
                    _query("state", {"enum": [s.value for s in EventState]}, "Only this state."),
                    _limit(50, max_limit),
                    _CURSOR,
                ],
                "responses": {
                    "200": _answer("A page of events.", _ref("EventPage")),
                    "400": _BAD_QUERY,
                    "503": _UNAVAILABLE,
                },
            },
        },
        "/events/batch": {
            "post": {
                "operationId": "submitEvents",
                "summary": "Submit many events in one request; each succeeds or fails alone.",
                "requestBody": {
                    "required": True,
                    "content": {
                        JSON: {
                            "schema": _obj(
                                ["events"],
                                events={
                                    "type": "array",
                                    "minItems": 1,
                                    "maxItems": max_batch,
                                    "items": _ref("EventSubmission"),
                                },
                            )
                        }
                    },
                },
                "responses": {
                    "202": _answer(
                        "Every event accepted (or existing already).",
                        _obj(
                            ["results", "accepted", "refused"],
                            results={"type": "array", "items": batch_result},
                            accepted=_INTEGER,
                            refused=_INTEGER,
                        ),
                    ),
                    "207": _answer(
                        "Some events refused: ``results[i]`` is what became of ``events[i]``.",
                        _obj(
                            ["results", "accepted", "refused"],
                            results={"type": "array", "items": batch_result},
                            accepted=_INTEGER,
                            refused=_INTEGER,
                        ),
                    ),
                    "400": _error('Not ``{"events": [...]}`` (``invalid_batch``).'),
                    "413": _error(f"More than {max_batch} events, or a body over the size limit."),
                    "503": _UNAVAILABLE,
                },
            }
        },
        "/events/{event_id}": {
            "get": {
                "operationId": "getEvent",
                "summary": "One event: state, phase, per-resource results and the timeline.",
                "parameters": [
                    _path("event_id", "The event's id."),
                    _query(
                        "wait",
                        {"type": "number", "minimum": 0, "maximum": max_wait, "default": 0},
                        "Hold the answer up to this many seconds until the timeline has more "
                        "than ``since`` entries (or the event has ended).",
                    ),
                    _query(
                        "since",
                        {"type": "integer", "minimum": 0, "maximum": 1_000_000, "default": 0},
                        "Timeline entries already seen.",
                    ),
                ],
                "responses": {
                    "200": _answer("The event.", _ref("EventRecord")),
                    "400": _BAD_QUERY,
                    "404": _error("No such event (``not_found``)."),
                    "503": _UNAVAILABLE,
                },
            }
        },
        "/agents": {
            "get": {
                "operationId": "listAgents",
                "summary": "Every agent that ever registered, by id.",
                "responses": {
                    "200": _answer("The agents.", _ref("AgentList")),
                    "503": _UNAVAILABLE,
                },
            }
        },
        "/agents/{agent_id}": {
            "get": {
                "operationId": "getAgent",
                "summary": "One agent: status, heartbeat, cluster, labels, capabilities.",
                "parameters": [_path("agent_id", "The agent's id.")],
                "responses": {
                    "200": _answer("The agent.", _ref("Agent")),
                    "404": _error("No agent with this id ever registered (``not_found``)."),
                    "503": _UNAVAILABLE,
                },
            }
        },
        "/audit": {
            "get": {
                "operationId": "listAudit",
                "summary": "Who asked for what, where it ran, how it ended; newest first.",
                "parameters": [_limit(100, max_limit), _CURSOR],
                "responses": {
                    "200": _answer("A page of audit entries.", _ref("AuditPage")),
                    "400": _BAD_QUERY,
                    "503": _UNAVAILABLE,
                },
            }
        },
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "summary": "Liveness: the process serves requests (says nothing of the store).",
                "responses": {
                    "200": _answer(
                        "Alive.",
                        _obj(["status", "version"], status={"const": "ok"}, version=_STRING),
                    )
                },
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "summary": "Readiness: the store answers.",
                "responses": {
                    "200": _answer("Ready.", _obj(["status"], status={"const": "ready"})),
                    "503": _UNAVAILABLE,
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document.",
                "responses": {"200": _answer("OpenAPI 3.1.", {"type": "object"})},
            }
        },
    }
    _secure(paths)
    return {
        "openapi": "3.1.0",
        "security": [{"bearer": []}],
        "info": {
            "title": "Transporter control plane",
            "version": version,
            "description": (
                "Events for agents on clusters that cannot be reached from outside. Every "
                "answer is JSON, errors included: ``{error, message}`` plus ``field`` when a "
                "submitted field is at fault."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": (
                        "An API token, ``tpt_<id>_<secret>``, from ``transporter token create`` "
                        "on the control plane's host. Its role (read, submit, admin) says which "
                        "operations it may call (``x-transporter-role``: the least role each "
                        "needs); a read or submit token reaches only the agents its glob "
                        "patterns match: other agents' events and agents are left out of "
                        "listings and refused (403) by name."
                    ),
                }
            },
        },
    }


OPEN_OPERATIONS = frozenset({"healthz", "readyz", "openapi"})
"""Operations that need no token."""
ROLES = {
    "submitEvent": "submit",
    "submitEvents": "submit",
    "listEvents": "read",
    "getEvent": "read",
    "listAgents": "read",
    "getAgent": "read",
    "listAudit": "admin",
}
"""The least role of a token each other operation needs (the app's own declarations in
:mod:`.api` must agree: ``tests/badinput/test_openapi.py``)."""


def _secure(paths: dict[str, Any]) -> None:
    """Mark the open operations, and give every other one its role and its 401 and 403."""
    for item in paths.values():
        for operation in item.values():
            name = operation["operationId"]
            if name in OPEN_OPERATIONS:
                operation["security"] = []
                continue
            role = ROLES.get(name, "admin")
            operation["x-transporter-role"] = role
            operation["responses"]["401"] = _error(
                "No valid token (``unauthorized``): none, not a token, unknown, or revoked; "
                "with ``WWW-Authenticate: Bearer``."
            )
            operation["responses"]["403"] = _error(
                f"The token may not do this (``forbidden``): this operation needs role {role} "
                "(or above), or the agent is outside the token's patterns. The message says which."
            )
