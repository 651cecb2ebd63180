"""A rollout or a plan as submitted (:mod:`transporter.protocol.rollout_request`): what is kept,
the defaults, and a refusal naming its field for each kind of bad input."""

from __future__ import annotations

import re
from typing import Any

import attrs
import pytest

from transporter.protocol import codec
from transporter.protocol.messages import Deliver
from transporter.protocol.model import Action, Event, K8sPayload
from transporter.protocol.rollout import RolloutKind, Strategy, Wave, is_rollout_id
from transporter.protocol.rollout_request import (
    DEFAULT_PLAN_TTL,
    MAX_ROLLOUT_BYTES,
    MAX_TARGETS,
    MAX_WAVES,
    PERCENT,
    ROLLOUT_ID,
    RolloutTooLarge,
    check_total,
    child_bytes,
    is_rollout_body,
    parse_plan,
    parse_plan_apply,
    parse_rollout,
    parse_strategy,
)
from transporter.protocol.signing import SIGNATURE_CHARS
from transporter.protocol.submission import (
    DEFAULT_TTL,
    MAX_EVENT_BYTES,
    EventTooLarge,
    InvalidEvent,
    parse_submission,
)

MANIFEST = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: default}\n"


def body(**fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"selector": "env=prod", "payload": {"manifests": [MANIFEST]}}
    out.update(fields)
    return {key: value for key, value in out.items() if value is not ...}


def payload(**fields: Any) -> dict[str, Any]:
    return {"manifests": [MANIFEST], **fields}


def rollout(**fields: Any) -> Any:
    return parse_rollout(body(**fields), now=7.0, new_id=lambda: "fresh", created_by="token:ci")


def refusal(parse: Any, value: Any) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as caught:
        parse(value, now=0.0, new_id=lambda: "x")
    return caught.value


def test_a_selector_rollout_gets_defaults() -> None:
    spec = rollout(selector="tier in (web, api),  env = prod")
    assert spec.id == "fresh"
    assert spec.kind is RolloutKind.APPLY
    assert spec.selector == "env=prod,tier in (api,web)"  # canonical
    assert spec.agents == ()
    assert spec.ttl == DEFAULT_TTL
    assert spec.created_at == 7.0
    assert spec.created_by == "token:ci"
    assert spec.strategy == Strategy()
    assert not spec.standing and not spec.allow_empty
    assert spec.payload.action is Action.APPLY


def test_listed_agents_are_kept_sorted() -> None:
    spec = rollout(selector=..., target_agents=["b-2", "a-1", "c"])
    assert spec.agents == ("a-1", "b-2", "c")
    assert spec.selector == ""


def test_every_field_of_a_rollout() -> None:
    spec = parse_rollout(
        body(
            id="web.v2",
            ttl=600,
            priority=5,
            labels={"team": "a"},
            standing=True,
            allow_empty=True,
            payload={"manifests": [MANIFEST], "wait_ready": True, "ready_timeout": 90},
            strategy={
                "max_parallel": "25%",
                "max_failures": 2,
                "waves": [
                    {"selector": "ring=canary", "approval": True},
                    {"selector": "", "pause": 30, "approval": True},
                ],
            },
        ),
        now=1.0,
        new_id=lambda: "unused",
        scope=("team-a-*",),
    )
    assert spec.id == "web.v2"
    assert (spec.ttl, spec.priority, spec.labels) == (600, 5, {"team": "a"})
    assert spec.standing and spec.allow_empty
    assert spec.scope == ("team-a-*",)
    assert spec.payload.wait_ready and spec.payload.ready_timeout == 90
    assert spec.strategy == Strategy(
        max_parallel_percent=25,
        max_failures=2,
        waves=(Wave("ring=canary", approval=True), Wave("", pause=30, approval=True)),
    )


def test_the_same_body_twice_is_the_same_spec_but_for_its_time() -> None:
    first = parse_rollout(body(id="r1"), now=1.0, new_id=str)
    again = parse_rollout(body(id="r1"), now=2.0, new_id=str)
    assert first.created_at != again.created_at
    assert attrs.evolve(again, created_at=first.created_at) == first


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"target_agent": "a"}, "target_agent", "exactly one of"),
        ({"target_agents": ["a"]}, "selector", "exactly one of"),
        ({"selector": 5}, "selector", "text"),
        ({"selector": "env in (a"}, "selector", ""),
        ({"selector": "Not A Key!=x"}, "selector", ""),
        ({"selector": ""}, "selector", "every agent"),
        ({"selector": "   "}, "selector", "every agent"),
        ({"selector": "x" * 5000}, "selector", "4096"),
        ({"selector": ..., "target_agents": []}, "target_agents", "empty"),
        ({"selector": ..., "target_agents": "a"}, "target_agents", "list"),
        ({"selector": ..., "target_agents": ["a", "A"]}, "target_agents[1]", "agent id"),
        ({"selector": ..., "target_agents": ["a", 3]}, "target_agents[1]", "agent id"),
        ({"selector": ..., "target_agents": ["a", "b", "a"]}, "target_agents[2]", "second"),
        ({"id": "has_underscore"}, "id", "letters"),
        ({"id": ""}, "id", "letters"),
        ({"id": "x" * 65}, "id", "1-64"),
        ({"id": None}, "id", "letters"),
        ({"type": "shell"}, "type", "k8s_resource"),
        ({"payload": ...}, "payload", "required"),
        ({"payload": {"manifests": []}}, "payload.manifests", "empty"),
        ({"payload": {"manifests": [MANIFEST], "action": "plan"}}, "payload.action", "plans"),
        ({"ttl": 0}, "ttl", "between"),
        ({"priority": 5000}, "priority", "between"),
        ({"labels": {"a": 1}}, "labels.a", "string"),
        ({"standing": "yes"}, "standing", "true or false"),
        ({"allow_empty": 1}, "allow_empty", "true or false"),
        ({"colour": "blue"}, "colour", "unknown field"),
        ({"strategy": []}, "strategy", "object"),
        ({"strategy": {"speed": 1}}, "strategy.speed", "unknown field"),
        ({"strategy": {"max_parallel": -1}}, "strategy.max_parallel", "between"),
        ({"strategy": {"max_parallel": 100_001}}, "strategy.max_parallel", "between"),
        ({"strategy": {"max_parallel": 1.5}}, "strategy.max_parallel", "whole number"),
        ({"strategy": {"max_parallel": True}}, "strategy.max_parallel", "whole number"),
        ({"strategy": {"max_parallel": "0%"}}, "strategy.max_parallel", "1%"),
        ({"strategy": {"max_parallel": "101%"}}, "strategy.max_parallel", "100%"),
        ({"strategy": {"max_parallel": "5"}}, "strategy.max_parallel", "percentage"),
        ({"strategy": {"max_parallel": "-5%"}}, "strategy.max_parallel", "percentage"),
        ({"strategy": {"max_parallel": "1000%"}}, "strategy.max_parallel", "percentage"),
        ({"strategy": {"max_parallel": " 5%"}}, "strategy.max_parallel", "percentage"),
        ({"strategy": {"max_failures": -1}}, "strategy.max_failures", "between"),
        ({"strategy": {"max_failures": "1"}}, "strategy.max_failures", "whole number"),
        ({"strategy": {"waves": {}}}, "strategy.waves", "list"),
        ({"strategy": {"waves": [{}] * (MAX_WAVES + 1)}}, "strategy.waves", "at most 16"),
        ({"strategy": {"waves": ["a=b"]}}, "strategy.waves[0]", "object"),
        ({"strategy": {"waves": [{"selector": "a=b", "x": 1}]}}, "strategy.waves[0].x", "unknown"),
        ({"strategy": {"waves": [{"selector": ""}, {}]}}, "strategy.waves[0].selector", "last"),
        ({"strategy": {"waves": [{"pause": 1}, {}]}}, "strategy.waves[0].selector", "last"),
        ({"strategy": {"waves": [{"selector": "a in ("}]}}, "strategy.waves[0].selector", ""),
        ({"strategy": {"waves": [{"selector": 1}]}}, "strategy.waves[0].selector", "text"),
        ({"strategy": {"waves": [{"pause": 86_401}]}}, "strategy.waves[0].pause", "between"),
        ({"strategy": {"waves": [{"pause": -1}]}}, "strategy.waves[0].pause", "between"),
        ({"strategy": {"waves": [{"approval": "yes"}]}}, "strategy.waves[0].approval", "or false"),
        ({"strategy": {"waves": [{"selector": "a=b", "pause": 5}, {}]}}, "strategy.waves[0].pause",
         "the first wave has none"),
        ({"selector": ..., "target_agents": ["a"], "standing": True}, "standing",
         "needs a selector"),
        ({"payload": payload(wait_ready=1)}, "payload.wait_ready", "true or false"),
        ({"payload": payload(ready_timeout=5)}, "payload.ready_timeout", "only"),
        ({"payload": payload(wait_ready=True, ready_timeout=0)}, "payload.ready_timeout", "betw"),
        ({"payload": payload(wait_ready=True, ready_timeout=3601)}, "payload.ready_timeout", "36"),
        ({"payload": payload(action="delete", wait_ready=True)}, "payload.wait_ready", "apply"),
    ],
)  # fmt: skip
def test_invalid_rollouts_name_the_field(fields: dict[str, Any], field: str, words: str) -> None:
    problem = refusal(parse_rollout, body(**fields))
    assert problem.field == field
    assert words in problem.problem


def test_not_an_object_is_refused() -> None:
    values: list[Any] = [None, [], "x", 5]
    for value in values:
        assert refusal(parse_rollout, value).field == "body"
        assert refusal(parse_plan, value).field == "body"


def test_at_most_a_thousand_agents() -> None:
    agents = [f"a-{i}" for i in range(MAX_TARGETS)]
    assert len(rollout(selector=..., target_agents=agents).agents) == MAX_TARGETS
    problem = refusal(parse_rollout, body(selector=..., target_agents=[*agents, "b"]))
    assert problem.field == "target_agents"
    assert "at most 1000" in problem.problem


def test_a_token_s_identity_is_the_creator_and_the_body_may_not_say_it() -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_rollout(body(created_by="me"), now=0.0, new_id=str, created_by="token:ci")
    assert caught.value.field == "created_by"


def test_every_child_event_must_fit_the_agent_channel() -> None:
    """The size is checked on the largest child there can be: a manifest that fits a single
    event to a short agent id may not fit a child event (a longer id, and ``rollout_id``)."""
    manifest = sized(MAX_EVENT_BYTES - 100)
    single = parse_submission(
        {"target_agent": "a", "payload": {"manifests": [manifest]}}, now=0.0, new_id=lambda: "e"
    )
    assert single.target_agent == "a"
    with pytest.raises(EventTooLarge) as caught:
        parse_rollout(body(id="r" * 64, payload={"manifests": [manifest]}), now=0.0, new_id=str)
    assert caught.value.field == "payload.manifests"
    listed = body(selector=..., target_agents=["a" * 63], id="r" * 64)
    with pytest.raises(EventTooLarge):
        parse_rollout({**listed, "payload": {"manifests": [manifest]}}, now=0.0, new_id=str)


def test_a_rollout_s_children_together_are_bounded() -> None:
    """1000 agents named and 300 kB of manifests would store 300 MB of child events: 413,
    naming the numbers; the same manifests for fewer agents are taken."""
    manifest = "a: " + "x" * 300_000 + "\n"
    agents = [f"a-{i:03}" for i in range(MAX_TARGETS)]
    big = body(selector=..., target_agents=agents, payload={"manifests": [manifest]})
    with pytest.raises(RolloutTooLarge) as caught:
        parse_rollout(big, now=0.0, new_id=lambda: "r")
    assert caught.value.field == "target_agents"
    assert caught.value.problem.startswith("1000 clusters x 0.3 MB = 300.")
    assert "more than 256 MiB: split the rollout or the manifests" in caught.value.problem
    with pytest.raises(RolloutTooLarge):
        parse_plan(big, now=0.0, new_id=lambda: "r")
    fewer = parse_rollout({**big, "target_agents": agents[:800]}, now=0.0, new_id=lambda: "r")
    assert len(fewer.agents) == 800
    child = child_bytes(fewer)
    assert 300_000 < child < 301_000
    check_total(MAX_ROLLOUT_BYTES // child, child, "selector")
    with pytest.raises(RolloutTooLarge) as caught:
        check_total(MAX_ROLLOUT_BYTES // child + 1, child, "selector")
    assert caught.value.field == "selector"


def sized(size: int) -> str:
    """A manifest whose single event (id ``e`` for agent ``a``) takes ``size`` bytes on the
    agent channel: ``é`` takes 6 bytes of JSON (``\\u00e9``), 2 of the 3 MB of manifests."""

    def taken(manifest: str) -> int:
        event = Event("e", "a", K8sPayload((manifest,)), DEFAULT_TTL, 0.0)
        return len(codec.encode(Deliver(event))) + SIGNATURE_CHARS

    base = taken("a: \n")
    wide, narrow = divmod(size - base, 6)
    manifest = "a: " + "é" * wide + "x" * narrow + "\n"
    assert taken(manifest) == size
    return manifest


def test_is_a_rollout_by_its_targets() -> None:
    assert is_rollout_body({"selector": "a=b"})
    assert is_rollout_body({"target_agents": []})
    assert is_rollout_body({"target_agent": "a", "selector": "a=b"})
    assert not is_rollout_body({"target_agent": "a"})
    assert not is_rollout_body(["selector"])


@pytest.mark.parametrize("name", ["strategy", "standing", "allow_empty"])
def test_a_single_event_refuses_what_only_a_rollout_takes(name: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_submission(
            {"target_agent": "a", "payload": {"manifests": [MANIFEST]}, name: {}},
            now=0.0,
            new_id=lambda: "e",
        )
    assert caught.value.field == name
    assert "only for a rollout" in caught.value.problem


def test_strategy_alone() -> None:
    assert parse_strategy({}) == Strategy()
    assert parse_strategy({"max_parallel": 3, "max_failures": 1}) == Strategy(3, 0, 1)
    assert parse_strategy({"max_parallel": "100%"}).max_parallel_percent == 100
    waves = parse_strategy({"waves": [{"selector": "b=1 , a=2"}]}).waves
    assert waves == (Wave("a=2,b=1"),)


# --- plans ------------------------------------------------------------------------------------


def plan(**fields: Any) -> Any:
    return parse_plan(body(**fields), now=3.0, new_id=lambda: "p-1")


def test_a_plan_gets_its_kind_and_an_hour_to_live() -> None:
    spec = plan(payload={"manifests": [MANIFEST], "action": "delete"})
    assert spec.kind is RolloutKind.PLAN
    assert spec.id == "p-1"
    assert spec.ttl == DEFAULT_PLAN_TTL
    assert spec.payload.action is Action.DELETE
    assert plan(ttl=60).ttl == 60


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"strategy": {}}, "strategy"),
        ({"standing": True}, "standing"),
        ({"allow_empty": True}, "allow_empty"),
        ({"target_agent": "a"}, "target_agent"),
        ({"selector": ...}, "target_agents"),
        ({"payload": {"manifests": [MANIFEST], "wait_ready": True}}, "payload.wait_ready"),
        ({"payload": {"manifests": [MANIFEST], "action": "plan"}}, "payload.action"),
        ({"ttl": 0}, "ttl"),
    ],
)
def test_invalid_plans_name_the_field(fields: dict[str, Any], field: str) -> None:
    assert refusal(parse_plan, body(**fields)).field == field


def test_applying_a_plan() -> None:
    apply = parse_plan_apply({})
    assert apply.rollout_id is None and apply.strategy == Strategy()
    assert not apply.wait_ready and apply.ttl == DEFAULT_TTL
    apply = parse_plan_apply(
        {
            "id": "go",
            "strategy": {"max_parallel": 1},
            "wait_ready": True,
            "ready_timeout": 60,
            "ttl": 120,
        }
    )
    assert (apply.rollout_id, apply.strategy.max_parallel) == ("go", 1)
    assert (apply.wait_ready, apply.ready_timeout, apply.ttl) == (True, 60, 120)


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ([], "body"),
        ({"id": "a_b"}, "id"),
        ({"strategy": {"max_parallel": "x"}}, "strategy.max_parallel"),
        ({"ready_timeout": 5}, "ready_timeout"),
        ({"wait_ready": True, "ready_timeout": 0}, "ready_timeout"),
        ({"wait_ready": "no"}, "wait_ready"),
        ({"ttl": -1}, "ttl"),
        ({"selector": "a=b"}, "selector"),
    ],
)
def test_invalid_plan_applies_name_the_field(value: Any, field: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_plan_apply(value)
    assert caught.value.field == field


@pytest.mark.parametrize(
    "text", ["a", "A.b-1", "r" * 64, "r" * 65, "", "-a", ".a", "a_b", "a b", "é", "a/b"]
)
def test_the_documented_patterns_say_what_the_parser_takes(text: str) -> None:
    assert bool(re.fullmatch(ROLLOUT_ID, text)) == is_rollout_id(text)
    percent = f"{text}%"
    try:
        parse_strategy({"max_parallel": percent})
        taken = True
    except InvalidEvent:
        taken = False
    assert bool(re.fullmatch(PERCENT, percent)) == taken


@pytest.mark.parametrize("n", [*range(102), 1000, -1])
def test_percentages_are_1_to_100(n: int) -> None:
    for text in (f"{n}%", f"0{n}%"):
        taken = re.fullmatch(PERCENT, text) is not None
        assert taken == (text == f"{n}%" and 1 <= n <= 100)
        if taken:
            assert parse_strategy({"max_parallel": text}).max_parallel_percent == n
        else:
            with pytest.raises(InvalidEvent):
                parse_strategy({"max_parallel": text})
