"""Turning a producer's JSON into an :class:`Event`, field by field, or saying what is wrong.

Pure: the caller supplies the time and a fresh id. The YAML of each manifest is checked for
syntax and for its bounds only, from the parser's event stream (never composed into a tree nor
constructed, so aliases are not expanded and memory does not grow with the document); what the
objects mean is the agent's business in its ``validating`` phase.

The limits here are shared: the agent's YAML loader (:mod:`transporter.kube.yaml_safe`) keeps the
same nesting and alias bounds, so an event accepted here is never refused there for its shape.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import yaml

from transporter.protocol import codec
from transporter.protocol.messages import Deliver
from transporter.protocol.model import EVENT_TYPE_K8S, Action, Event, K8sPayload
from transporter.protocol.signing import SIGNATURE_CHARS

DEFAULT_TTL = 24 * 3600
MAX_TTL = 30 * 24 * 3600
MAX_MANIFESTS = 500
"""Manifests (strings, each of one or more YAML documents) in one event."""
MAX_MANIFEST_BYTES = 3 * 1024 * 1024
"""Total size of an event's manifests (UTF-8), checked before any YAML is read."""
MAX_EVENT_BYTES = codec.MAX_MESSAGE_BYTES
"""Size of the event as the agent channel carries it (one ``deliver`` message, JSON). Checked
last, because JSON escaping makes the text longer (a newline takes 2 bytes, other characters up
to 12): an event over it could never reach its agent, whose channel refuses such a message."""
MAX_YAML_DEPTH = 100
"""Deepest nesting of YAML nodes in one document (a scalar inside ``[[…]]`` is at depth 3)."""
MAX_YAML_ALIAS_NODES = 100_000
"""Nodes the YAML aliases of one event may stand for, each alias counted as a copy of the node
it names (a "billion laughs" document is refused, never expanded)."""

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


def _text(value: Any, field: str, what: str) -> str:
    """``value`` as a string of valid Unicode (a JSON string may hold a lone surrogate)."""
    _require(isinstance(value, str), field, f"must be {what}")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise InvalidEvent(field, "is not valid Unicode text (a lone surrogate)") from None
    return str(value)


class _YamlRefused(yaml.YAMLError):
    """Valid YAML beyond our bounds."""

    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


class _Collection:
    """A sequence or mapping being read: its nodes so far and the height of its tallest child."""

    __slots__ = ("anchor", "height", "nodes")

    def __init__(self, anchor: str | None) -> None:
        self.anchor = anchor
        self.nodes = 1
        self.height = 0


class _AliasBudget:
    """Nodes the aliases of one event may still stand for."""

    def __init__(self) -> None:
        self.left = MAX_YAML_ALIAS_NODES


_STARTS = (yaml.SequenceStartEvent, yaml.MappingStartEvent)
_ENDS = (yaml.SequenceEndEvent, yaml.MappingEndEvent)


def _scan_yaml(text: str, budget: _AliasBudget) -> None:
    """Read ``text`` as YAML events only, keeping the bounds; raises :class:`yaml.YAMLError`.

    Work and memory are linear in the text and nothing is expanded: an alias counts as the
    ``(nodes, height)`` measured when the node it names was read. Refused like the agent's
    loader refuses them: nesting deeper than :data:`MAX_YAML_DEPTH`, aliases standing for
    more than :data:`MAX_YAML_ALIAS_NODES` nodes, an alias inside the node it names (a cycle),
    and undefined or duplicate anchors.
    """
    open_: list[_Collection] = []
    named: dict[str, tuple[int, int]] = {}
    """Anchors of the current document that are read to the end: ``(nodes, height)``."""
    for event in yaml.parse(text, Loader=_LOADER):
        nodes = height = 0
        if isinstance(event, yaml.ScalarEvent | yaml.SequenceStartEvent | yaml.MappingStartEvent):
            if len(open_) >= MAX_YAML_DEPTH:
                raise _YamlRefused(f"nested deeper than {MAX_YAML_DEPTH} levels", event.start_mark)
            anchor = event.anchor
            if anchor is not None and (anchor in named or any(c.anchor == anchor for c in open_)):
                raise _YamlRefused(f"duplicate anchor &{anchor}", event.start_mark)
            if isinstance(event, _STARTS):
                open_.append(_Collection(anchor))
                continue
            nodes = height = 1
            if anchor is not None:
                named[anchor] = (1, 1)
        elif isinstance(event, _ENDS):
            done = open_.pop()
            nodes, height = done.nodes, done.height + 1
            if done.anchor is not None:
                named[done.anchor] = (nodes, height)
        elif isinstance(event, yaml.AliasEvent):
            anchor = event.anchor
            if anchor not in named:
                enclosing = any(c.anchor == anchor for c in open_)
                problem = "refers to a node that contains it" if enclosing else "is not defined"
                raise _YamlRefused(f"alias *{anchor} {problem}", event.start_mark)
            nodes, height = named[anchor]
            budget.left -= nodes
            if budget.left < 0:
                raise _YamlRefused(
                    f"aliases expand to more than {MAX_YAML_ALIAS_NODES} nodes", event.start_mark
                )
            if len(open_) + height > MAX_YAML_DEPTH:
                raise _YamlRefused(f"nested deeper than {MAX_YAML_DEPTH} levels", event.start_mark)
        elif isinstance(event, yaml.DocumentStartEvent):
            named.clear()  # anchors belong to one document
            continue
        else:
            continue
        if open_:
            parent = open_[-1]
            parent.nodes += nodes
            parent.height = max(parent.height, height)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """The problem and where, never quoting the document (a manifest may hold secrets)."""
    problem = getattr(exc, "problem", None) or str(exc) or type(exc).__name__
    context = getattr(exc, "context", None)
    text = f"YAML {problem}" if isinstance(exc, _YamlRefused) else f"not valid YAML: {problem}"
    if context:
        text += f" ({context})"
    mark = getattr(exc, "problem_mark", None)
    line, column = getattr(mark, "line", None), getattr(mark, "column", None)
    if isinstance(line, int) and isinstance(column, int):
        text += f" at line {line + 1}, column {column + 1}"
    return text


def _check_yaml(text: str, field: str, budget: _AliasBudget) -> None:
    try:
        _scan_yaml(text, budget)
    except yaml.YAMLError as exc:
        raise InvalidEvent(field, _yaml_problem(exc)) from None


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
    budget = _AliasBudget()
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
    event_id = body.get("id")
    if "id" not in body:
        event_id = new_id()
    else:  # null included: like every other optional field, absent or valid
        _require(
            isinstance(event_id, str) and _ID.fullmatch(event_id),
            "id",
            "must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    kind = body.get("type", EVENT_TYPE_K8S)
    _require(kind == EVENT_TYPE_K8S, "type", f"must be {EVENT_TYPE_K8S!r}")
    target = body.get("target_agent")
    _require(target is not None, "target_agent", "is required")
    _require(
        isinstance(target, str) and _AGENT.fullmatch(target),
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
        _text(key, "labels", "an object of strings")
        _text(value, f"labels.{key}", "a string")
    if created_by is not None:
        _require(
            "created_by" not in body,
            "created_by",
            f"is set by the control plane from the submitting token (here {created_by!r});"
            " leave it out",
        )
    else:
        created_by = body.get("created_by", "")
        _require(
            isinstance(created_by, str) and len(created_by) <= 256,
            "created_by",
            "must be a string of at most 256 characters",
        )
        _text(created_by, "created_by", "a string")
    event = Event(
        id=event_id,
        target_agent=target,
        payload=payload,
        ttl=ttl,
        created_at=now,
        priority=priority,
        labels=dict(labels),
        created_by=created_by,
    )
    # As the agent channel will carry it: signed (the signature is added when it is accepted).
    size = len(codec.encode(Deliver(event))) + SIGNATURE_CHARS
    if size > MAX_EVENT_BYTES:
        raise EventTooLarge(
            "payload.manifests",
            f"the event takes {size} bytes as sent to its agent, more than {MAX_EVENT_BYTES}",
        )
    return event
