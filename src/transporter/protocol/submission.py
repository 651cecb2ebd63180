"""Turning a producer's JSON into an :class:`Event`, field by field, or saying what is wrong.

Pure: the caller supplies the time and a fresh id. The YAML of each manifest is checked for
syntax and for its bounds only (:func:`transporter.protocol.yaml_reader.scan`: the parser's
events, never a tree, so aliases are not expanded and memory does not grow with the document);
what the objects mean is the agent's business in its ``validating`` phase, where the same
reader keeps the same bounds.
"""

from __future__ import annotations

import re
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
"""Manifests (strings, each of one or more YAML documents) in one event."""
MIN_PRIORITY = -1000
MAX_PRIORITY = 1000
MAX_CREATED_BY = 256
"""Characters of a ``created_by`` given without authentication."""
MAX_READY_TIMEOUT = 3600
"""Seconds an agent may be asked to wait for its objects to be ready (``wait_ready``)."""
MAX_MANIFEST_BYTES = 3 * 1024 * 1024
"""Total size of an event's manifests (UTF-8), checked before any YAML is read."""
MAX_EVENT_BYTES = codec.MAX_MESSAGE_BYTES
"""Size of the event as the agent channel carries it (one ``deliver`` message, JSON). Checked
last, because JSON escaping makes the text longer (a newline takes 2 bytes, other characters up
to 12): an event over it could never reach its agent, whose channel refuses such a message."""
_FIELDS = {"id", "type", "target_agent", "payload", "ttl", "priority", "labels", "created_by"}
_PAYLOAD_FIELDS = {"manifests", "action", "wait_ready", "ready_timeout"}
ROLLOUT_ONLY = frozenset({"strategy", "standing", "allow_empty"})
"""Fields of a rollout (``target_agents`` or ``selector``) that a single event refuses."""
SUBMITTED_EVENT_ID = r"^[A-Za-z0-9][A-Za-z0-9.-]{0,127}$"
"""A submitted event's id: :data:`.ids.EVENT_ID` without ``'_'``, which is reserved for
rollouts' child events (``<rollout>_<agent>``), so that no submission can take a child's id
(events stored before keep theirs)."""
_SUBMITTED_EVENT_ID = re.compile(SUBMITTED_EVENT_ID)
SUBMITTED_EVENT_ID_RULE = "1-128 letters, digits, '.' or '-', starting with a letter or digit"
SUBMITTED_ACTIONS = (Action.APPLY, Action.DELETE)
"""What a submission may ask; ``plan`` is ``POST /plans``, whose child events carry it."""


class InvalidEvent(ValueError):
    """The submission is not a valid event; ``field`` names where (dotted path)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class EventTooLarge(InvalidEvent):
    """Valid in form, but over a limit (answered 413)."""


def require[T](cond: T, field: str, problem: str) -> T:
    if not cond:
        raise InvalidEvent(field, problem)
    return cond


def whole_number(value: Any, field: str, low: int, high: int) -> int:
    ok = isinstance(value, int) and not isinstance(value, bool)
    require(ok, field, f"must be a whole number, got {type(value).__name__}")
    require(low <= value <= high, field, f"must be between {low} and {high}, got {value}")
    return int(value)


def text_of(value: Any, field: str, what: str) -> str:
    """``value`` as a string of valid Unicode (a JSON string may hold a lone surrogate)."""
    require(isinstance(value, str), field, f"must be {what}")
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
    """A submission's ``payload``: manifests checked for their bounds, an action a producer may
    ask for, and ``wait_ready`` (with its ``ready_timeout``) only for an apply."""
    require(isinstance(value, Mapping), "payload", "must be an object")
    extra = sorted(set(value) - _PAYLOAD_FIELDS)
    require(not extra, f"payload.{extra[0] if extra else ''}", "unknown field")
    manifests = value.get("manifests")
    require(isinstance(manifests, list), "payload.manifests", "must be a list of YAML strings")
    require(manifests, "payload.manifests", "must not be empty")
    if len(manifests) > MAX_MANIFESTS:
        raise EventTooLarge("payload.manifests", f"more than {MAX_MANIFESTS} manifests")
    total = 0
    budget = yaml_reader.Budget()
    for index, manifest in enumerate(manifests):
        field = f"payload.manifests[{index}]"
        text = text_of(manifest, field, "a string of YAML")
        total += len(text.encode())
        if total > MAX_MANIFEST_BYTES:
            raise EventTooLarge("payload.manifests", f"more than {MAX_MANIFEST_BYTES} bytes")
        require(text.strip(), field, "is empty")
        _check_yaml(text, field, budget)
    action = _action(value.get("action", Action.APPLY.value))
    wait_ready, ready_timeout = _readiness(value, action)
    return K8sPayload(
        manifests=tuple(manifests),
        action=action,
        wait_ready=wait_ready,
        ready_timeout=ready_timeout,
    )


def _action(value: Any) -> Action:
    if value == Action.PLAN.value:
        raise InvalidEvent("payload.action", "plan is not submitted as an event: POST /plans")
    choices = ", ".join(a.value for a in SUBMITTED_ACTIONS)
    valid = isinstance(value, str) and value in {a.value for a in SUBMITTED_ACTIONS}
    require(valid, "payload.action", f"must be one of {choices}")
    return Action(value)


def _readiness(payload: Mapping[str, Any], action: Action) -> tuple[bool, int]:
    """``wait_ready`` and ``ready_timeout`` (0: the agent's default), refused where they would
    mean nothing: a delete has nothing to wait for, and a timeout without a wait is a mistake
    about what was asked."""
    wait = payload.get("wait_ready", False)
    require(isinstance(wait, bool), "payload.wait_ready", "must be true or false")
    if wait:
        require(action is Action.APPLY, "payload.wait_ready", "is only for the action apply")
    if "ready_timeout" not in payload:
        return bool(wait), 0
    require(wait, "payload.ready_timeout", "is only given with wait_ready: true")
    return True, whole_number(
        payload["ready_timeout"], "payload.ready_timeout", 1, MAX_READY_TIMEOUT
    )


def check_type(body: Mapping[str, Any]) -> None:
    kind = body.get("type", EVENT_TYPE_K8S)
    require(kind == EVENT_TYPE_K8S, "type", f"must be {EVENT_TYPE_K8S!r}")


def parse_submission(
    body: Any, *, now: float, new_id: Callable[[], str], created_by: str | None = None
) -> Event:
    """Validate a ``POST /events`` body. Raises :class:`InvalidEvent` naming the first problem.

    ``created_by``: who is submitting, as the control plane knows it (``token:<name>``); the
    body may then not say it (refused, rather than ignored: a producer that sets it learns that
    it is not what the event will carry). ``None`` (authentication off): the body's own
    ``created_by``, unchecked.
    """
    require(isinstance(body, Mapping), "body", "must be a JSON object")
    rollout_only = sorted(set(body) & ROLLOUT_ONLY)
    if rollout_only:
        raise InvalidEvent(
            rollout_only[0], "is only for a rollout (target_agents or selector, not target_agent)"
        )
    extra = sorted(set(body) - _FIELDS)
    require(not extra, extra[0] if extra else "", "unknown field")
    event_id = _event_id(body, new_id)
    check_type(body)
    target = body.get("target_agent")
    require(
        target is not None,
        "target_agent",
        "is required (or, for a rollout over many agents, target_agents or selector)",
    )
    require(
        isinstance(target, str) and ids.is_agent_id(target),
        "target_agent",
        f"must be an agent id: {ids.AGENT_ID_RULE}",
    )
    require("payload" in body, "payload", "is required")
    event = Event(
        id=event_id,
        target_agent=target,
        payload=parse_payload(body["payload"]),
        ttl=whole_number(body.get("ttl", DEFAULT_TTL), "ttl", 1, MAX_TTL),
        created_at=now,
        priority=whole_number(body.get("priority", 0), "priority", MIN_PRIORITY, MAX_PRIORITY),
        labels=labels_of(body.get("labels", {})),
        created_by=created_by_of(body, created_by),
    )
    check_size(event)
    return event


def check_size(event: Event) -> int:
    """:class:`EventTooLarge` unless ``event`` fits the agent channel as it will carry it:
    signed (the signature is added when it is accepted). Returns its size so."""
    size = sent_size(event)
    if size > MAX_EVENT_BYTES:
        raise EventTooLarge(
            "payload.manifests",
            f"the event takes {size} bytes as sent to its agent, more than {MAX_EVENT_BYTES}",
        )
    return size


def sent_size(event: Event) -> int:
    """Bytes ``event`` takes as its agent receives it: one ``deliver`` message, signed."""
    return len(codec.encode(Deliver(event))) + SIGNATURE_CHARS


def _event_id(body: Mapping[str, Any], new_id: Callable[[], str]) -> str:
    if "id" not in body:
        return new_id()
    event_id = body["id"]  # null included: like every other optional field, absent or valid
    require(
        isinstance(event_id, str) and ids.is_event_id(event_id.replace("_", "-")),
        "id",
        f"must be {SUBMITTED_EVENT_ID_RULE}",
    )
    require(
        _SUBMITTED_EVENT_ID.fullmatch(event_id),
        "id",
        "may not hold '_': it is reserved for rollouts' child events (<rollout>_<agent>)",
    )
    return str(event_id)


def labels_of(labels: Any) -> dict[str, str]:
    require(isinstance(labels, Mapping), "labels", "must be an object of strings")
    for key, value in labels.items():
        text_of(key, "labels", "an object of strings")
        text_of(value, f"labels.{key}", "a string")
    return dict(labels)


def created_by_of(body: Mapping[str, Any], created_by: str | None) -> str:
    if created_by is not None:
        require(
            "created_by" not in body,
            "created_by",
            f"is set by the control plane from the submitting token (here {created_by!r});"
            " leave it out",
        )
        return created_by
    claimed = body.get("created_by", "")
    require(
        isinstance(claimed, str) and len(claimed) <= MAX_CREATED_BY,
        "created_by",
        f"must be a string of at most {MAX_CREATED_BY} characters",
    )
    text_of(claimed, "created_by", "a string")
    return str(claimed)
