"""Turning a producer's JSON into an :class:`Event`, field by field, or saying what is wrong.

Pure: the caller supplies the time and a fresh id. The YAML of each manifest is checked for
syntax only (composed, never constructed, so aliases are not expanded here); what the objects
mean is the agent's business in its ``validating`` phase.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import yaml

from transporter.protocol.model import EVENT_TYPE_K8S, Action, Event, K8sPayload

DEFAULT_TTL = 24 * 3600
MAX_TTL = 30 * 24 * 3600
MAX_MANIFESTS = 500
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
"""Total size of an event's manifests; the agent channel carries one event in one message."""

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's parser when PyYAML was built with it (about 6 times faster), else pure Python."""
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_AGENT = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$")
_FIELDS = {"id", "type", "target_agent", "payload", "ttl", "priority", "labels", "created_by"}
_PAYLOAD_FIELDS = {"manifests", "action"}


class InvalidEvent(ValueError):
    """The submission is not a valid event; ``field`` names where (dotted path)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class EventTooLarge(InvalidEvent):
    """Valid in form, but over a limit (answered 413)."""


def _require[T](cond: T, field: str, problem: str) -> T:
    if not cond:
        raise InvalidEvent(field, problem)
    return cond


def _int(value: Any, field: str, low: int, high: int) -> int:
    ok = isinstance(value, int) and not isinstance(value, bool)
    _require(ok, field, f"must be a whole number, got {type(value).__name__}")
    _require(low <= value <= high, field, f"must be between {low} and {high}, got {value}")
    return int(value)


def _check_yaml(text: str, field: str) -> None:
    try:
        for _ in yaml.compose_all(text, Loader=_LOADER):
            pass
    except yaml.YAMLError as exc:
        raise InvalidEvent(field, f"not valid YAML: {' '.join(str(exc).split())}") from None


def parse_payload(value: Any) -> K8sPayload:
    _require(isinstance(value, Mapping), "payload", "must be an object")
    extra = sorted(set(value) - _PAYLOAD_FIELDS)
    _require(not extra, f"payload.{extra[0] if extra else ''}", "unknown field")
    manifests = value.get("manifests")
    _require(isinstance(manifests, list), "payload.manifests", "must be a list of YAML strings")
    _require(manifests, "payload.manifests", "must not be empty")
    if len(manifests) > MAX_MANIFESTS:
        raise EventTooLarge("payload.manifests", f"more than {MAX_MANIFESTS} manifests")
    total = 0
    for index, text in enumerate(manifests):
        field = f"payload.manifests[{index}]"
        _require(isinstance(text, str), field, "must be a string of YAML")
        total += len(text.encode())
        if total > MAX_MANIFEST_BYTES:
            raise EventTooLarge("payload.manifests", f"more than {MAX_MANIFEST_BYTES} bytes")
        _require(text.strip(), field, "is empty")
        _check_yaml(text, field)
    action = value.get("action", Action.APPLY.value)
    choices = ", ".join(a.value for a in Action)
    _require(action in {a.value for a in Action}, "payload.action", f"must be one of {choices}")
    return K8sPayload(manifests=tuple(manifests), action=Action(action))


def parse_submission(body: Any, *, now: float, new_id: Callable[[], str]) -> Event:
    """Validate a ``POST /events`` body. Raises :class:`InvalidEvent` naming the first problem."""
    _require(isinstance(body, Mapping), "body", "must be a JSON object")
    extra = sorted(set(body) - _FIELDS)
    _require(not extra, extra[0] if extra else "", "unknown field")
    event_id = body.get("id")
    if event_id is None:
        event_id = new_id()
    else:
        _require(
            isinstance(event_id, str) and _ID.match(event_id),
            "id",
            "must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    kind = body.get("type", EVENT_TYPE_K8S)
    _require(kind == EVENT_TYPE_K8S, "type", f"must be {EVENT_TYPE_K8S!r}")
    target = body.get("target_agent")
    _require(target is not None, "target_agent", "is required")
    _require(
        isinstance(target, str) and _AGENT.match(target),
        "target_agent",
        "must be an agent id: 1-63 lower-case letters, digits, '-' or '.'",
    )
    _require("payload" in body, "payload", "is required")
    payload = parse_payload(body["payload"])
    ttl = _int(body.get("ttl", DEFAULT_TTL), "ttl", 1, MAX_TTL)
    priority = _int(body.get("priority", 0), "priority", -1000, 1000)
    labels = body.get("labels", {})
    _require(isinstance(labels, Mapping), "labels", "must be an object of strings")
    for key, value in labels.items():
        _require(isinstance(value, str), f"labels.{key}", "must be a string")
    created_by = body.get("created_by", "")
    _require(
        isinstance(created_by, str) and len(created_by) <= 256,
        "created_by",
        "must be a string of at most 256 characters",
    )
    return Event(
        id=event_id,
        target_agent=target,
        payload=payload,
        ttl=ttl,
        created_at=now,
        priority=priority,
        labels=dict(labels),
        created_by=created_by,
    )
