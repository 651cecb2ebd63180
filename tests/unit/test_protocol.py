"""The wire language: one converter, strict decoding, and the rules of an event's progress."""

from __future__ import annotations

import json

import pytest

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
    EventRecord,
    EventState,
    K8sPayload,
    Phase,
    ResourceResult,
    ResourceStatus,
)
from transporter.protocol.status import StatusUpdate, accepted, advance
from transporter.protocol.submission import EventTooLarge, InvalidEvent, parse_submission

EVENT = Event(
    id="e-1",
    target_agent="agent-1",
    payload=K8sPayload(("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n",)),
    ttl=60,
    created_at=1000.0,
    labels={"team": "platform"},
    created_by="ci",
)


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


def submission(**fields: object) -> dict[str, object]:
    body: dict[str, object] = {
        "target_agent": "agent-1",
        "payload": {"manifests": ["apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n"]},
    }
    body.update(fields)
    return body


def test_a_minimal_submission_gets_defaults() -> None:
    event = parse_submission(submission(), now=5.0, new_id=lambda: "generated")
    assert event.id == "generated"
    assert event.ttl == 24 * 3600
    assert event.payload.action is Action.APPLY
    assert event.created_at == 5.0


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"target_agent": None}, "target_agent", "required"),
        ({"target_agent": "Not An Id"}, "target_agent", "agent id"),
        ({"payload": {"manifests": []}}, "payload.manifests", "empty"),
        ({"payload": {"manifests": "kind: X"}}, "payload.manifests", "list"),
        ({"payload": {"manifests": [42]}}, "payload.manifests[0]", "string"),
        ({"payload": {"manifests": ["a: [unclosed"]}}, "payload.manifests[0]", "not valid YAML"),
        ({"payload": {"manifests": ["a: 1"], "action": "explode"}}, "payload.action", "one of"),
        ({"payload": {"manifests": ["a: 1"], "extra": 1}}, "payload.extra", "unknown"),
        ({"ttl": 0}, "ttl", "between"),
        ({"ttl": "1h"}, "ttl", "whole number"),
        ({"ttl": True}, "ttl", "whole number"),
        ({"type": "shell"}, "type", "k8s_resource"),
        ({"id": "has space"}, "id", "letters"),
        ({"labels": {"a": 1}}, "labels.a", "string"),
        ({"colour": "blue"}, "colour", "unknown field"),
    ],
)
def test_invalid_submissions_name_the_field(
    fields: dict[str, object], field: str, words: str
) -> None:
    body = submission(**fields)
    if fields.get("target_agent", "") is None:
        del body["target_agent"]
    with pytest.raises(InvalidEvent) as caught:
        parse_submission(body, now=0, new_id=lambda: "x")
    assert caught.value.field == field
    assert words in caught.value.problem


def test_too_many_manifests_is_too_large() -> None:
    with pytest.raises(EventTooLarge):
        parse_submission(
            submission(payload={"manifests": ["a: 1"] * 501}), now=0, new_id=lambda: "x"
        )


def test_a_repeat_is_the_same_request_whenever_it_comes() -> None:
    again = parse_submission(
        {
            "id": "e-1",
            "target_agent": "agent-1",
            "ttl": 60,
            "labels": {"team": "platform"},
            "created_by": "ci",
            "payload": {"manifests": list(EVENT.payload.manifests)},
        },
        now=99_999.0,
        new_id=lambda: "unused",
    )
    assert EVENT.same_request(again)
    assert not EVENT.same_request(
        parse_submission(
            {
                "id": "e-1",
                "target_agent": "agent-2",
                "ttl": 60,
                "payload": {"manifests": list(EVENT.payload.manifests)},
            },
            now=0,
            new_id=lambda: "u",
        )
    )


def test_progress_moves_forward_and_terminal_is_final() -> None:
    record = accepted(EventRecord(EVENT, seq=1))
    assert record.state is EventState.QUEUED and len(record.timeline) == 1
    assigned = advance(record, StatusUpdate(at=1, state=EventState.ASSIGNED))
    assert assigned is not None and assigned.state is EventState.ASSIGNED
    requeued = advance(assigned, StatusUpdate(at=2, state=EventState.QUEUED))
    assert requeued is not None and requeued.state is EventState.QUEUED
    working = advance(
        assigned, StatusUpdate(at=3, state=EventState.IN_PROGRESS, phase=Phase.APPLYING)
    )
    assert working is not None
    assert advance(working, StatusUpdate(at=4, state=EventState.ASSIGNED)) is None
    assert (
        advance(working, StatusUpdate(at=4, state=EventState.IN_PROGRESS, phase=Phase.APPLYING))
        is None
    )  # no change, no entry
    done = advance(
        working,
        StatusUpdate(
            at=5,
            state=EventState.COMPLETED,
            phase=Phase.COMPLETED,
            message="1 created",
            resources=(),
        ),
    )
    assert done is not None
    assert [entry.state for entry in done.timeline] == [
        EventState.QUEUED,
        EventState.ASSIGNED,
        EventState.IN_PROGRESS,
        EventState.COMPLETED,
    ]
    assert advance(done, StatusUpdate(at=6, state=EventState.FAILED)) is None
    assert advance(done, StatusUpdate(at=6, state=EventState.EXPIRED)) is None
