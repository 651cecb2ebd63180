"""Signed events: the canonical bytes, and that any change to a signed field is found."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import attrs
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from transporter.protocol import codec, signing
from transporter.protocol.messages import Deliver
from transporter.protocol.model import Action, Event, K8sPayload
from transporter.security.ed25519 import PublicKey

KEY = Ed25519PrivateKey.generate()
PUBLIC = PublicKey(KEY.public_key().public_bytes_raw())
"""The agent's key (OpenSSL through ctypes); the control plane signs with ``cryptography``."""
CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: greeting\n"


def event(**changes: Any) -> Event:
    base = Event(
        id="e-1",
        target_agent="site-1",
        payload=K8sPayload((CONFIGMAP,)),
        ttl=3600,
        created_at=1_700_000_000.25,
        priority=5,
        labels={"team": "a", "env": "prod"},
        created_by="token:ci",
    )
    return attrs.evolve(base, **changes)


def test_every_field_but_the_signature_is_signed() -> None:
    """A field added to Event must be added to SIGNED_FIELDS (and canonical) on purpose."""
    names = {field.name for field in attrs.fields(Event)} - {"signature"}
    assert set(signing.SIGNED_FIELDS) == names


def test_the_canonical_bytes_are_as_documented() -> None:
    digest = hashlib.sha256(CONFIGMAP.encode()).hexdigest()
    assert signing.canonical(event()) == (
        b"transporter event v1\n"
        b'{"created_at":1700000000.25,"created_by":"token:ci","id":"e-1",'
        b'"labels":{"env":"prod","team":"a"},'
        b'"payload":{"action":"apply","manifests":["' + digest.encode() + b'"]},'
        b'"priority":5,"target_agent":"site-1","ttl":3600,"type":"k8s_resource"}'
    )


def test_canonical_bytes_do_not_depend_on_label_order_or_the_signature() -> None:
    one = event(labels={"a": "1", "b": "2"})
    two = event(labels={"b": "2", "a": "1"}, signature="whatever")
    assert signing.canonical(one) == signing.canonical(two)


def test_any_text_has_canonical_bytes() -> None:
    odd = event(
        payload=K8sPayload(("data:\n  k: 'grüße ✓'\n", "x: '\ud800'\n")),
        created_by="Zoë",
        labels={"ключ": "значение"},
    )
    assert signing.canonical(odd).isascii()
    signing.verify(signing.sign(odd, KEY), PUBLIC)


def test_a_signed_event_verifies_also_after_the_wire_and_the_store() -> None:
    signed = signing.sign(event(), KEY)
    assert len(signed.signature) == signing.SIGNATURE_CHARS
    signing.verify(signed, PUBLIC)
    # What the agent gets: the event through the one converter, as JSON.
    delivered = codec.decode(codec.encode(Deliver(signed)))
    assert isinstance(delivered, Deliver)
    signing.verify(delivered.event, PUBLIC)


CHANGES = {
    "id": {"id": "e-2"},
    "target_agent": {"target_agent": "site-2"},
    "manifest text": {"payload": K8sPayload((CONFIGMAP + "data:\n  k: v\n",))},
    "manifest added": {"payload": K8sPayload((CONFIGMAP, CONFIGMAP))},
    "action": {"payload": K8sPayload((CONFIGMAP,), Action.DELETE)},
    "ttl": {"ttl": 3601},
    "created_at": {"created_at": 1_700_000_000.5},
    "priority": {"priority": 6},
    "labels": {"labels": {"team": "b", "env": "prod"}},
    "created_by": {"created_by": "token:intruder"},
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
def test_a_change_to_any_signed_field_is_refused(change: dict[str, Any]) -> None:
    signed = signing.sign(event(), KEY)
    changed = attrs.evolve(signed, **change)
    assert changed != signed
    with pytest.raises(signing.BadSignature, match="does not match"):
        signing.verify(changed, PUBLIC)


def test_reordered_manifests_are_refused() -> None:
    signed = signing.sign(event(payload=K8sPayload(("a: 1\n", "b: 2\n"))), KEY)
    swapped = attrs.evolve(signed, payload=K8sPayload(("b: 2\n", "a: 1\n")))
    with pytest.raises(signing.BadSignature):
        signing.verify(swapped, PUBLIC)


def tampered(signature: str) -> str:
    raw = bytearray(base64.b64decode(signature))
    raw[10] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize(
    ("signature", "problem"),
    [
        pytest.param(None, "does not match", id="one-bit-flipped"),
        pytest.param("", "not signed", id="missing"),
        pytest.param("not base64!", "not base64", id="not-base64"),
        pytest.param(base64.b64encode(b"short").decode(), "not 64", id="too-short"),
    ],
)
def test_a_bad_signature_is_refused(signature: str | None, problem: str) -> None:
    signed = signing.sign(event(), KEY)
    bad = attrs.evolve(
        signed, signature=tampered(signed.signature) if signature is None else signature
    )
    with pytest.raises(signing.BadSignature, match=problem):
        signing.verify(bad, PUBLIC)


def test_another_keys_signature_is_refused() -> None:
    other = Ed25519PrivateKey.generate()
    with pytest.raises(signing.BadSignature, match="does not match"):
        signing.verify(signing.sign(event(), other), PUBLIC)
    signing.verify(signing.sign(event(), other), PublicKey(other.public_key().public_bytes_raw()))


def test_a_repeated_submit_is_the_same_request_whatever_its_signature() -> None:
    first = signing.sign(event(), KEY)
    again = event(created_at=1_700_000_100.0)
    assert first.same_request(again)
    assert not first.same_request(event(priority=1))


ROLLOUT_PAYLOAD = K8sPayload(
    (CONFIGMAP,), wait_ready=True, ready_timeout=120, expect={"/ConfigMap/-/greeting": "ab" * 16}
)
NEW_FIELDS = {
    "rollout_id": {"rollout_id": "r-1"},
    "wait_ready": {"payload": attrs.evolve(ROLLOUT_PAYLOAD, wait_ready=False)},
    "ready_timeout": {"payload": attrs.evolve(ROLLOUT_PAYLOAD, ready_timeout=121)},
    "expect changed": {
        "payload": attrs.evolve(ROLLOUT_PAYLOAD, expect={"/ConfigMap/-/greeting": "cd" * 16})
    },
    "expect emptied": {"payload": attrs.evolve(ROLLOUT_PAYLOAD, expect={})},
    "plan action": {"payload": attrs.evolve(ROLLOUT_PAYLOAD, action=Action.PLAN)},
}


@pytest.mark.parametrize("change", NEW_FIELDS.values(), ids=NEW_FIELDS.keys())
def test_the_new_fields_are_signed_when_set(change: dict[str, Any]) -> None:
    signed = signing.sign(event(payload=ROLLOUT_PAYLOAD, rollout_id="r-0"), KEY)
    signing.verify(signed, PUBLIC)
    changed = attrs.evolve(signed, **change)
    with pytest.raises(signing.BadSignature, match="does not match"):
        signing.verify(changed, PUBLIC)


def test_the_new_fields_stand_in_the_canonical_bytes_only_when_set() -> None:
    plain = signing.canonical(event())
    assert b"rollout_id" not in plain and b"wait_ready" not in plain and b"expect" not in plain
    with_them = signing.canonical(event(payload=ROLLOUT_PAYLOAD, rollout_id="r-0"))
    assert with_them.endswith(
        b'"payload":{"action":"apply","expect":{"/ConfigMap/-/greeting":"'
        + b"ab" * 16
        + b'"},"manifests":["'
        + hashlib.sha256(CONFIGMAP.encode()).hexdigest().encode()
        + b'"],"ready_timeout":120,"wait_ready":true},"priority":5,"rollout_id":"r-0",'
        b'"target_agent":"site-1","ttl":3600,"type":"k8s_resource"}'
    )


def test_a_rollouts_child_verifies_after_the_wire() -> None:
    signed = signing.sign(event(payload=ROLLOUT_PAYLOAD, rollout_id="r-0"), KEY)
    delivered = codec.decode(codec.encode(Deliver(signed)))
    assert isinstance(delivered, Deliver)
    assert delivered.event == signed
    signing.verify(delivered.event, PUBLIC)
