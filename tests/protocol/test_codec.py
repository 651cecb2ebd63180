"""The wire language (:mod:`transporter.protocol.codec`): one converter for every message, and
strict decoding."""

from __future__ import annotations

import json

import attrs
import pytest

from tests.bed.records import SMALL_EVENT
from transporter.protocol import codec
from transporter.protocol.messages import (
    AckBatch,
    Deliver,
    DeliverBatch,
    Heartbeat,
    Receipt,
    Register,
    ReportBatch,
    Status,
    StatusAck,
)
from transporter.protocol.model import (
    Action,
    AgentInfo,
    Event,
    EventState,
    FieldChange,
    K8sPayload,
    Phase,
    Readiness,
    ResourceResult,
    ResourceStatus,
)

EVENT = SMALL_EVENT


def test_events_encoded_apart_make_the_same_deliver_and_deliveries() -> None:
    other = Event(id="e-2", target_agent="agent-1", payload=EVENT.payload, ttl=60, created_at=1.0)
    one, two = codec.encode_event(EVENT), codec.encode_event(other)
    assert one.isascii()  # its length is its size in bytes
    assert codec.decode(codec.deliver_text(one)) == Deliver(EVENT)
    assert codec.decode(codec.deliveries_text([one, two])) == DeliverBatch((EVENT, other))
    assert json.loads(codec.deliveries_text([one, two])) == json.loads(
        codec.encode(DeliverBatch((EVENT, other)))
    )


@pytest.mark.parametrize(
    "message",
    [
        Register(AgentInfo("agent-1", labels={"env": "prod"}, capabilities=("k8s_resource",))),
        Heartbeat(at=12.5),
        Deliver(EVENT),
        DeliverBatch((EVENT, EVENT)),
        Status(
            "e-1",
            3,
            2.0,
            EventState.FAILED,
            Phase.FAILED,
            "boom",
            (ResourceResult("v1", "ConfigMap", "c", "default", ResourceStatus.FAILED, "no"),),
        ),
        StatusAck("e-1", 3),
        ReportBatch(
            received=(Receipt("e-1", 1.5), Receipt("e-2", 1.75)),
            statuses=(Status("e-1", 1, 2.0, EventState.IN_PROGRESS, Phase.VALIDATING),),
        ),
        AckBatch((StatusAck("e-1", 1), StatusAck("e-2", 4))),
    ],
)
def test_every_message_survives_the_wire(message: codec.Message) -> None:  # type: ignore[name-defined]
    text = codec.encode(message)
    assert json.loads(text)["type"] == message.TAG
    assert codec.decode(text) == message


@pytest.mark.parametrize(
    ("text", "code", "words"),
    [
        ("{nope", "malformed", "not JSON"),
        ("[1, 2]", "malformed", "JSON object"),
        ('{"type": "launch_missiles"}', "unknown_type", "launch_missiles"),
        ('{"at": 1}', "unknown_type", "None"),
        ('{"type": "heartbeat"}', "invalid", "$.at"),
        ('{"type": "heartbeat", "at": 1, "extra": true}', "invalid", "extra"),
        (
            '{"type": "status", "event_id": "e", "seq": 1, "at": 1, "state": "dancing"}',
            "invalid",
            "$.state",
        ),
    ],
)
def test_bad_messages_are_refused_with_a_reason(text: str, code: str, words: str) -> None:
    with pytest.raises(codec.ProtocolError) as caught:
        codec.decode(text)
    assert caught.value.code == code
    assert words in caught.value.message


def test_oversized_messages_are_refused_before_parsing() -> None:
    with pytest.raises(codec.ProtocolError) as caught:
        codec.decode("x" * 101, max_bytes=100)
    assert caught.value.code == "too_large"


def test_the_new_fields_are_left_off_the_wire_when_unset() -> None:
    text = codec.encode_event(EVENT)
    for name in ("rollout_id", "wait_ready", "ready_timeout", "expect"):
        assert name not in text
    result = ResourceResult("v1", "ConfigMap", "c", "default", ResourceStatus.CREATED)
    status = Status("e-1", 1, 2.0, EventState.COMPLETED, Phase.COMPLETED, "", (result,))
    for said in (codec.encode(status), codec.encode(ReportBatch(statuses=(status,)))):
        # An older peer decodes with forbid_extra_keys: a key it does not know fails the report.
        for name in ("ready", "diff", "fingerprint"):
            assert f'"{name}"' not in said


def test_the_new_fields_survive_the_wire() -> None:
    event = attrs.evolve(
        EVENT,
        rollout_id="r-1",
        payload=K8sPayload(
            EVENT.payload.manifests,
            Action.PLAN,
            wait_ready=True,
            ready_timeout=30,
            expect={"apps/Deployment/web/shop": "absent"},
        ),
    )
    assert codec.decode(codec.encode(Deliver(event))) == Deliver(event)
    result = ResourceResult(
        "apps/v1",
        "Deployment",
        "web",
        "shop",
        ResourceStatus.WOULD_CHANGE,
        "1 field would change",
        ready=Readiness.IN_PROGRESS,
        diff=(FieldChange("spec.replicas", "change", "2", "3"), FieldChange("x", "add", "", "1")),
        fingerprint="ab" * 16,
    )
    status = Status("e-1", 2, 2.0, EventState.IN_PROGRESS, Phase.VERIFYING, "w", (result,))
    assert codec.decode(codec.encode(status)) == status
    wire = json.loads(codec.encode(status))
    assert wire["resources"][0]["diff"][0] == {
        "path": "spec.replicas",
        "op": "change",
        "old": "2",
        "new": "3",
    }
