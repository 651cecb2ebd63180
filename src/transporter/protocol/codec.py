"""The one converter for everything that crosses a wire: agent-channel messages and API bodies.

Rules (cattrs' JSON preset, plus):
- messages carry their kind in ``type`` (``{"type": "heartbeat", "at": 1.5}``);
- enums travel as their values, tuples as lists, ``None`` as ``null``;
- unknown keys are refused, so a typo is an error, not a silently dropped field;
- every decoding problem becomes :class:`ProtocolError` with a message a person can act on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import attrs
import cattrs
from cattrs.gen import make_dict_unstructure_fn, override
from cattrs.preconf.json import make_converter
from cattrs.strategies import configure_tagged_union

from transporter.protocol.messages import MESSAGE_TYPES, Message, Status
from transporter.protocol.model import Event, K8sPayload, ResourceResult

MAX_MESSAGE_BYTES = 4 * 1024 * 1024
"""Default bound of one agent-channel message (an event's manifests travel in one)."""


class ProtocolError(ValueError):
    """The peer sent something that is not a valid message. Their fault, not a lost link."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


converter = make_converter(forbid_extra_keys=True)


def _tag(cls: Any) -> str:
    return str(cls.TAG)


# Fields a protocol version added travel only when set, so older peers never see them.
_OMITTED_WHEN_UNSET: dict[type[Any], tuple[str, ...]] = {  # the parts before the whole
    K8sPayload: ("wait_ready", "ready_timeout", "plan_of", "expect"),
    ResourceResult: ("ready", "diff", "fingerprint"),
    Event: ("rollout_id",),
}
for _kind, _names in _OMITTED_WHEN_UNSET.items():
    attrs.resolve_types(_kind)
    _omit: dict[str, Any] = {name: override(omit_if_default=True) for name in _names}
    converter.register_unstructure_hook(_kind, make_dict_unstructure_fn(_kind, converter, **_omit))
# After its results' hook: a hook is made with those of its fields' types as they are then.
converter.register_unstructure_hook(
    Status,
    make_dict_unstructure_fn(Status, converter, replay=override(omit_if_default=True)),
)
configure_tagged_union(Message, converter, tag_generator=_tag, tag_name="type")


def unstructure(value: Any) -> Any:
    return converter.unstructure(value)


def structure[T](data: Any, kind: type[T]) -> T:
    """Build ``kind`` from JSON-shaped data; :class:`ProtocolError` says what was wrong."""
    try:
        return converter.structure(data, kind)
    except (cattrs.BaseValidationError, KeyError, TypeError, ValueError) as exc:
        raise ProtocolError("invalid", _explain(exc)) from None


def encode(message: Message) -> str:
    return json.dumps(converter.unstructure(message, Message), separators=(",", ":"))


def encode_event(event: Event) -> str:
    """One event as JSON (ASCII: its length is its size in bytes), to send in a ``deliver`` or
    ``deliveries`` message made by :func:`deliver_text` or :func:`deliveries_text`."""
    return json.dumps(converter.unstructure(event, Event), separators=(",", ":"))


def deliver_text(event: str) -> str:
    """``encode(Deliver(e))``, from ``event = encode_event(e)``."""
    return '{"type":"deliver","event":' + event + "}"


def deliveries_text(events: Sequence[str]) -> str:
    """``encode(DeliverBatch(es))``, from the events as :func:`encode_event` gave them: a
    batch's size is known before it is made."""
    return '{"type":"deliveries","events":[' + ",".join(events) + "]}"


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise ValueError(f"duplicate key {key!r}")
        found[key] = value
    return found


def loads(text: str | bytes, *, unique_keys: bool = False) -> Any:
    """JSON text to data, stricter than :func:`json.loads`, for everything a peer sends us.

    Refused with :class:`ValueError`: ``NaN`` and ``Infinity`` (not JSON, though Python reads
    them), nesting too deep for the parser (a ``RecursionError`` otherwise, which nothing
    expects), strings with a lone surrogate (``"\\ud800"``: no text encoding can store it),
    bytes that are not UTF-8, and with ``unique_keys`` an object with a key twice (which one
    counts? a proxy in front may read the other).
    """
    if isinstance(text, bytes):
        # UTF-8, strictly: json.loads would also take UTF-16 or UTF-32, and encoded surrogates.
        text = text.decode()
    else:
        text.encode()  # a raw surrogate in the text itself (UnicodeEncodeError)
    try:
        hook = _unique if unique_keys else None
        data = json.loads(text, parse_constant=_no_constant, object_pairs_hook=hook)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    if "\\ud" in text or "\\uD" in text:  # an escaped surrogate, perhaps of a valid pair
        try:
            # A string with a lone surrogate cannot be encoded: encode everything once (in C).
            json.dumps(data, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            raise ValueError("a string holds a lone surrogate, which is not text") from None
    return data


def decode(text: str | bytes, *, max_bytes: int = MAX_MESSAGE_BYTES) -> Message:
    if len(text) > max_bytes:
        raise ProtocolError("too_large", f"message of {len(text)} bytes exceeds {max_bytes}")
    try:
        data = loads(text)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors too
        raise ProtocolError("malformed", f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProtocolError("malformed", "a message is a JSON object")
    kind = data.get("type")
    known = {cls.TAG for cls in MESSAGE_TYPES}
    if kind not in known:
        raise ProtocolError("unknown_type", f"unknown message type {kind!r}")
    return structure(data, Message)  # type: ignore[arg-type]


def _explain(exc: BaseException) -> str:
    if isinstance(exc, cattrs.BaseValidationError):
        return "; ".join(cattrs.transform_error(exc)) or str(exc)
    return str(exc) or type(exc).__name__
