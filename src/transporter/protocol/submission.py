"""Turning a producer's JSON into an :class:`Event`, field by field, or saying what is wrong.

Pure: the caller supplies the time and a fresh id. The YAML of each manifest is checked for
syntax and for its bounds only (:func:`transporter.protocol.yaml_reader.scan`: the parser's
events, never a tree, so aliases are not expanded and memory does not grow with the document);
what the objects mean is the agent's business in its ``validating`` phase, where the same
reader keeps the same bounds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import yaml

from transporter.protocol import codec, ids, yaml_reader
from transporter.protocol.messages import Deliver
from transporter.protocol.model import EVENT_TYPE_K8S, Action, Event, K8sPayload
from transporter.protocol.signing import SIGNATURE_CHARS

DEFAULT_TTL = 24 * 3600
MAX_TTL = 30 * 24 * 3600
MAX_MANIFESTS = 500
MIN_PRIORITY = -1000
MAX_PRIORITY = 1000
MAX_CREATED_BY = 256
"""Characters of a ``created_by`` given without authentication."""
"""Manifests (strings, each of one or more YAML documents) in one event."""
MAX_MANIFEST_BYTES = 3 * 1024 * 1024
"""Total size of an event's manifests (UTF-8), checked before any YAML is read."""
MAX_EVENT_BYTES = codec.MAX_MESSAGE_BYTES
"""Size of the event as the agent channel carries it (one ``deliver`` message, JSON). Checked
last, because JSON escaping makes the text longer (a newline takes 2 bytes, other characters up
to 12): an event over it could never reach its agent, whose channel refuses such a message."""
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


def _text(value: Any, field: str, what: str) -> str:
    """``value`` as a string of valid Unicode (a JSON string may hold a lone surrogate)."""
    _require(isinstance(value, str), field, f"must be {what}")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise InvalidEvent(field, "is not valid Unicode text (a lone surrogate)") from None
    return str(value)


def _check_yaml(text: str, field: str, budget: yaml_reader.Budget) -> None:
    try:
        yaml_reader.scan(text, budget)
    except yaml.YAMLError as exc:
        raise InvalidEvent(field, yaml_reader.yaml_problem(exc)) from None


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
    budget = yaml_reader.Budget()
    for index, manifest in enumerate(manifests):
        field = f"payload.manifests[{index}]"
        text = _text(manifest, field, "a string of YAML")
        total += len(text.encode())
        if total > MAX_MANIFEST_BYTES:
            raise EventTooLarge("payload.manifests", f"more than {MAX_MANIFEST_BYTES} bytes")
        _require(text.strip(), field, "is empty")
        _check_yaml(text, field, budget)
    action = value.get("action", Action.APPLY.value)
    choices = ", ".join(a.value for a in Action)
    valid = isinstance(action, str) and action in {a.value for a in Action}
    _require(valid, "payload.action", f"must be one of {choices}")
    return K8sPayload(manifests=tuple(manifests), action=Action(action))


def parse_submission(
    body: Any, *, now: float, new_id: Callable[[], str], created_by: str | None = None
) -> Event:
    """Validate a ``POST /events`` body. Raises :class:`InvalidEvent` naming the first problem.

    ``created_by``: who is submitting, as the control plane knows it (``token:<name>``); the
    body may then not say it (refused, rather than ignored: a producer that sets it learns that
    it is not what the event will carry). ``None`` (authentication off): the body's own
    ``created_by``, unchecked.
    """
    _require(isinstance(body, Mapping), "body", "must be a JSON object")
    extra = sorted(set(body) - _FIELDS)
    _require(not extra, extra[0] if extra else "", "unknown field")
    kind = body.get("type", EVENT_TYPE_K8S)
    event_id = _event_id(body, new_id)
    _require(kind == EVENT_TYPE_K8S, "type", f"must be {EVENT_TYPE_K8S!r}")
    target = body.get("target_agent")
    _require(target is not None, "target_agent", "is required")
    _require(
        isinstance(target, str) and ids.is_agent_id(target),
        "target_agent",
        f"must be an agent id: {ids.AGENT_ID_RULE}",
    )
    _require("payload" in body, "payload", "is required")
    event = Event(
        id=event_id,
        target_agent=target,
        payload=parse_payload(body["payload"]),
        ttl=_int(body.get("ttl", DEFAULT_TTL), "ttl", 1, MAX_TTL),
        created_at=now,
        priority=_int(body.get("priority", 0), "priority", MIN_PRIORITY, MAX_PRIORITY),
        labels=_labels(body.get("labels", {})),
        created_by=_created_by(body, created_by),
    )
    # As the agent channel will carry it: signed (the signature is added when it is accepted).
    size = len(codec.encode(Deliver(event))) + SIGNATURE_CHARS
    if size > MAX_EVENT_BYTES:
        raise EventTooLarge(
            "payload.manifests",
            f"the event takes {size} bytes as sent to its agent, more than {MAX_EVENT_BYTES}",
        )
    return event


def _event_id(body: Mapping[str, Any], new_id: Callable[[], str]) -> str:
    if "id" not in body:
        return new_id()
    event_id = body["id"]  # null included: like every other optional field, absent or valid
    _require(
        isinstance(event_id, str) and ids.is_event_id(event_id),
        "id",
        f"must be {ids.EVENT_ID_RULE}",
    )
    return str(event_id)


def _labels(labels: Any) -> dict[str, str]:
    _require(isinstance(labels, Mapping), "labels", "must be an object of strings")
    for key, value in labels.items():
        _text(key, "labels", "an object of strings")
        _text(value, f"labels.{key}", "a string")
    return dict(labels)


def _created_by(body: Mapping[str, Any], created_by: str | None) -> str:
    if created_by is not None:
        _require(
            "created_by" not in body,
            "created_by",
            f"is set by the control plane from the submitting token (here {created_by!r});"
            " leave it out",
        )
        return created_by
    claimed = body.get("created_by", "")
    _require(
        isinstance(claimed, str) and len(claimed) <= MAX_CREATED_BY,
        "created_by",
        f"must be a string of at most {MAX_CREATED_BY} characters",
    )
    _text(claimed, "created_by", "a string")
    return str(claimed)
