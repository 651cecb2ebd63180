"""An event as submitted (:func:`transporter.protocol.submission.parse_submission`): defaults,
the field named in every refusal, the same request again, and ``created_by``."""

from __future__ import annotations

import pytest

from tests.bed.records import SMALL_EVENT
from transporter.protocol.model import Action
from transporter.protocol.submission import EventTooLarge, InvalidEvent, parse_submission

EVENT = SMALL_EVENT


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
        ({"id": "web-1_agent-1"}, "id", "reserved for rollouts' child events"),
        ({"id": "_x"}, "id", "letters"),
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


# --- created_by comes from the token --------------------------------------------------------

BODY = {"target_agent": "a", "payload": {"manifests": ["kind: ConfigMap\n"]}}


def test_a_token_s_identity_becomes_created_by() -> None:
    event = parse_submission(BODY, now=1.0, new_id=lambda: "e", created_by="token:ci")
    assert event.created_by == "token:ci"


def test_a_body_that_says_created_by_is_refused_when_the_token_says_it() -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_submission(
            {**BODY, "created_by": "token:ci"}, now=1.0, new_id=lambda: "e", created_by="token:ci"
        )
    assert caught.value.field == "created_by"
    assert "token:ci" in caught.value.problem and "leave it out" in caught.value.problem


def test_without_authentication_the_body_says_created_by() -> None:
    event = parse_submission({**BODY, "created_by": "alice"}, now=1.0, new_id=lambda: "e")
    assert event.created_by == "alice"


# --- wait_ready -------------------------------------------------------------------------------


def test_an_apply_may_wait_for_its_objects_to_be_ready() -> None:
    payload: dict[str, object] = {"manifests": ["kind: ConfigMap\n"], "wait_ready": True}
    event = parse_submission({**BODY, "payload": payload}, now=1.0, new_id=lambda: "e")
    assert event.payload.wait_ready and event.payload.ready_timeout == 0
    payload = {**payload, "ready_timeout": 3600}
    event = parse_submission({**BODY, "payload": payload}, now=1.0, new_id=lambda: "e")
    assert event.payload.ready_timeout == 3600
    plain = parse_submission(BODY, now=1.0, new_id=lambda: "e")
    assert not plain.payload.wait_ready and plain.payload.ready_timeout == 0


@pytest.mark.parametrize(
    ("extra", "field", "words"),
    [
        ({"wait_ready": "true"}, "payload.wait_ready", "true or false"),
        ({"wait_ready": True, "action": "delete"}, "payload.wait_ready", "apply"),
        ({"ready_timeout": 60}, "payload.ready_timeout", "wait_ready"),
        ({"wait_ready": False, "ready_timeout": 60}, "payload.ready_timeout", "wait_ready"),
        ({"wait_ready": True, "ready_timeout": 0}, "payload.ready_timeout", "between 1 and 3600"),
        ({"wait_ready": True, "ready_timeout": 3601}, "payload.ready_timeout", "between"),
        ({"wait_ready": True, "ready_timeout": 1.5}, "payload.ready_timeout", "whole number"),
        ({"action": "plan"}, "payload.action", "POST /plans"),
    ],
)
def test_wait_ready_refusals_name_the_field(
    extra: dict[str, object], field: str, words: str
) -> None:
    payload = {"manifests": ["kind: ConfigMap\n"], **extra}
    with pytest.raises(InvalidEvent) as caught:
        parse_submission({**BODY, "payload": payload}, now=1.0, new_id=lambda: "e")
    assert caught.value.field == field
    assert words in caught.value.problem
