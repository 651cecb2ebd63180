"""Signed events: what the control plane signs, and how an agent checks it. Pure, no I/O.

The control plane signs every event it accepts with its Ed25519 key, before the event is stored;
the agent checks the signature with the control plane's public key (from its bundle) before it
does anything else with the event. An event changed after it was accepted (by anybody who can
write to the store) no longer matches its signature, and the agent refuses it.

What is signed is :func:`canonical`: the ASCII bytes of :data:`DOMAIN` followed by the JSON
object of the event's immutable fields, :data:`SIGNED_FIELDS`::

    transporter event v1
    {"created_at":…,"created_by":…,"id":…,"labels":{…},
     "payload":{"action":…,"manifests":["<sha256 hex>",…]},"priority":…,"target_agent":…,
     "ttl":…,"type":…}

(and, each only when set, ``rollout_id`` and the payload's ``wait_ready``, ``ready_timeout``,
``plan_of`` and ``expect``) with keys sorted (at every level), no whitespace (separators ``,``
and ``:``), every non-ASCII character escaped as ``\\uXXXX``, integers as integers,
``created_at`` as Python's shortest round-tripping ``repr`` of the float (``1700000000.25``):
``json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
allow_nan=False)``. Each manifest stands there as the
SHA-256 (64 lower-case hex digits) of its exact UTF-8 bytes as submitted, in order: as binding
as the text itself, and it keeps the signed bytes small, so that an event of 3 MiB costs a few
milliseconds of hashing rather than tens of milliseconds of JSON escaping and Ed25519's two
passes over the message. ``expires_at`` is ``created_at + ttl``, so it is covered. The domain
line keeps these bytes from ever meaning anything else signed with the same key.

The signature is Ed25519 (RFC 8032, pure, over those bytes), carried in the event's
``signature`` field as standard base64 (88 characters for its 64 bytes). Neither the state of
an event nor its progress is signed: they change, and the agent reports them itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any, Final, Protocol

import attrs

from transporter.protocol.model import Action, Event

DOMAIN: Final = b"transporter event v1\n"

SIGNED_FIELDS: Final = (
    "created_at",
    "created_by",
    "id",
    "labels",
    "payload",
    "priority",
    "rollout_id",
    "target_agent",
    "ttl",
    "type",
)
"""Every field of :class:`~transporter.protocol.model.Event` but ``signature``. Named one by one,
so that a field added to the event is signed only once it is added here, on purpose (a test
checks that none is forgotten)."""

SIGNATURE_CHARS: Final = 88
"""Length of an event's ``signature`` (base64 of 64 bytes): what signing adds to the event as
the agent channel carries it, which the size limit of a submission allows for."""

REFUSED: Final = "signature does not match: refused"
"""The agent's message for an event whose signature it cannot verify."""


class Signer(Protocol):
    """The control plane's private key (:class:`transporter.security.ed25519.PrivateKey`;
    ``cryptography``'s ``Ed25519PrivateKey`` signs alike)."""

    def sign(self, data: bytes, /) -> bytes: ...


class Verifier(Protocol):
    """The control plane's public key as the agent holds it
    (:class:`transporter.security.ed25519.PublicKey`)."""

    def verifies(self, signature: bytes, message: bytes, /) -> bool:
        """Whether ``signature`` is this key's over ``message`` (RFC 8032, pure Ed25519)."""
        ...


class BadSignature(ValueError):
    """The event is not as the control plane signed it (or was never signed by it)."""


def canonical(event: Event) -> bytes:
    """The bytes the event's signature is over (see the module's docstring)."""
    fields: dict[str, Any] = {
        "created_at": event.created_at,
        "created_by": event.created_by,
        "id": event.id,
        "labels": event.labels,
        "payload": {
            "action": event.payload.action.value,
            "manifests": [
                hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
                for text in event.payload.manifests
            ],
        },
        "priority": event.priority,
        "target_agent": event.target_agent,
        "ttl": event.ttl,
        "type": event.type,
    }
    _optional(fields, event)
    text = json.dumps(
        fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )
    return DOMAIN + text.encode("ascii")


def _optional(fields: dict[str, Any], event: Event) -> None:
    """The fields added after version 1, each only when it is set: an event that does not use
    them is signed over exactly the bytes it always was."""
    payload = event.payload
    if event.rollout_id:
        fields["rollout_id"] = event.rollout_id
    if payload.wait_ready:
        fields["payload"]["wait_ready"] = True
    if payload.ready_timeout:
        fields["payload"]["ready_timeout"] = payload.ready_timeout
    if payload.plan_of is not Action.APPLY:
        fields["payload"]["plan_of"] = payload.plan_of.value
    if payload.expect:
        fields["payload"]["expect"] = payload.expect


def sign(event: Event, key: Signer) -> Event:
    """``event`` with its ``signature`` (whatever it held before is replaced)."""
    signature = base64.b64encode(key.sign(canonical(event))).decode("ascii")
    return attrs.evolve(event, signature=signature)


def verify(event: Event, key: Verifier) -> None:
    """Nothing when ``event`` is as ``key``'s owner signed it; else :class:`BadSignature`."""
    if not event.signature:
        raise BadSignature("the event is not signed")
    try:
        raw = base64.b64decode(event.signature, validate=True)
    except (binascii.Error, ValueError):
        raise BadSignature("the signature is not base64") from None
    if len(raw) != 64:
        raise BadSignature(f"the signature has {len(raw)} bytes, not 64")
    if not key.verifies(raw, canonical(event)):
        raise BadSignature("the signature does not match the event")
