"""``POST /events`` with ``target_agents`` or ``selector``: a rollout, against a real control
plane (SQLite, real HTTP): the answer's agents and waves, a repeat, a conflict, no_match,
allow_empty, a refusal naming the field, and a scoped token refused for an agent it does not
reach, with nothing stored."""

from __future__ import annotations

import functools

import trio

from tests.bed.clients import assert_error
from tests.bed.harness import ControlPlane
from tests.cp.api.conftest import PAYLOAD, call, register
from transporter.security.tokens import Role, token_id_of
from transporter.store import open_store


async def fleet(cp: ControlPlane) -> None:
    await register(cp, "team-a-1", env="prod", ring="canary", team="a")
    await register(cp, "team-a-2", env="prod", team="a")
    await register(cp, "team-b-1", env="prod", team="b")
    await register(cp, "team-a-dev", env="dev", team="a")


async def test_a_selector_rollout_answers_its_agents_by_wave(cp: ControlPlane) -> None:
    await fleet(cp)
    body = {
        "id": "web-1",
        "selector": "env=prod",
        "payload": PAYLOAD,
        "strategy": {"max_parallel": "50%", "waves": [{"selector": "ring=canary"}]},
    }
    answer = await call(cp, "POST", "/events", body)
    assert answer.status == 202, answer.body
    assert answer.json == {
        "rollout_id": "web-1",
        "status": "accepted",
        "agents": ["team-a-1", "team-a-2", "team-b-1"],
        "waves": [["team-a-1"], ["team-a-2", "team-b-1"]],
    }
    again = await call(cp, "POST", "/events", body)
    assert again.status == 200, again.body
    assert again.json["rollout_id"] == "web-1" and again.json["status"] == "exists"
    assert isinstance(again.json["state"], str)
    other = await call(cp, "POST", "/events", {**body, "selector": "env=dev"})
    assert_error(other, 409, "conflict", "id")


async def test_listed_agents_need_not_have_registered(cp: ControlPlane) -> None:
    body = {"target_agents": ["later-2", "later-1"], "payload": PAYLOAD}
    answer = await call(cp, "POST", "/events", body)
    assert answer.status == 202, answer.body
    assert answer.json["agents"] == ["later-1", "later-2"]
    assert answer.json["waves"] == [["later-1", "later-2"]]
    rollout_id = answer.json["rollout_id"]
    shown = await call(cp, "GET", f"/rollouts/{rollout_id}")
    assert shown.status == 200
    assert shown.json["agents"] == ["later-1", "later-2"]
    children = {cluster["event_id"] for cluster in shown.json["clusters"]}
    assert children == {f"{rollout_id}_later-1", f"{rollout_id}_later-2"}


async def test_nothing_matched_is_refused_unless_allowed(cp: ControlPlane) -> None:
    await fleet(cp)
    body = {"id": "none", "selector": "env=staging", "payload": PAYLOAD}
    assert_error(await call(cp, "POST", "/events", body), 400, "no_match")
    assert_error(await call(cp, "GET", "/rollouts/none"), 404, "not_found")
    empty = {**body, "standing": True, "allow_empty": True}
    answer = await call(cp, "POST", "/events", empty)
    assert answer.status == 202, answer.body
    assert answer.json["agents"] == []


async def test_invalid_rollouts_name_the_field(cp: ControlPlane) -> None:
    cases = [
        ({"selector": "env in (", "payload": PAYLOAD}, "selector"),
        ({"selector": "env=prod", "target_agent": "x", "payload": PAYLOAD}, "target_agent"),
        ({"target_agents": ["a", "a"], "payload": PAYLOAD}, "target_agents[1]"),
        ({"selector": "a=b", "payload": PAYLOAD, "strategy": {"max_parallel": "0%"}},
         "strategy.max_parallel"),
        ({"target_agent": "a", "payload": PAYLOAD, "strategy": {}}, "strategy"),
        ({"target_agent": "a", "payload": {**PAYLOAD, "ready_timeout": 5}},
         "payload.ready_timeout"),
    ]  # fmt: skip
    for body, field in cases:
        assert_error(await call(cp, "POST", "/events", body), 400, "invalid_event", field)


async def test_a_scoped_token_may_not_reach_an_agent_it_does_not_cover(cp: ControlPlane) -> None:
    """A ``team-a-*`` token and a selector that also matches ``team-b-1``: 403 naming it, and
    no rollout stored."""
    await fleet(cp)
    token = await cp.new_token("team-a", Role.SUBMIT, ("team-a-*",))
    body = {"id": "reach", "selector": "env=prod", "payload": PAYLOAD}
    refused = assert_error(await call(cp, "POST", "/events", body, token=token), 403, "forbidden")
    assert "'team-b-1'" in refused["message"] and "'team-a-1'" not in refused["message"]
    named = {"id": "reach", "target_agents": ["team-a-1", "team-b-1"], "payload": PAYLOAD}
    assert_error(await call(cp, "POST", "/events", named, token=token), 403, "forbidden")
    assert_error(await call(cp, "GET", "/rollouts/reach"), 404, "not_found")
    assert (await call(cp, "GET", "/rollouts")).json["items"] == []
    # Within its reach, it may; and it sees that rollout, but not one that reaches further.
    ok = {"id": "mine", "selector": "team=a,env=prod", "payload": PAYLOAD}
    assert (await call(cp, "POST", "/events", ok, token=token)).status == 202
    admin = {"id": "all", "selector": "env=prod", "payload": PAYLOAD}
    assert (await call(cp, "POST", "/events", admin)).status == 202
    seen = await call(cp, "GET", "/rollouts", token=token)
    assert [item["id"] for item in seen.json["items"]] == ["mine"]
    assert_error(await call(cp, "GET", "/rollouts/all", token=token), 403, "forbidden")
    reader = await cp.new_token("reader", Role.READ, ("*",))
    assert_error(await call(cp, "POST", "/events", ok, token=reader), 403, "forbidden")


async def test_a_single_event_may_wait_for_readiness(cp: ControlPlane) -> None:
    payload = {**PAYLOAD, "wait_ready": True, "ready_timeout": 120}
    answer = await call(cp, "POST", "/events", {"target_agent": "x", "payload": payload})
    assert answer.status == 202, answer.body
    shown = await call(cp, "GET", f"/events/{answer.json['event_id']}")
    assert shown.json["event"]["payload"]["wait_ready"] is True
    assert shown.json["event"]["payload"]["ready_timeout"] == 120


async def test_a_submitted_event_s_id_may_not_hold_an_underscore(cp: ControlPlane) -> None:
    """``'_'`` is reserved for rollouts' child events (``<rollout>_<agent>``): a single event
    or one of a batch may not take a child's id, even before that rollout exists."""
    body = {"id": "web-1_agent-1", "target_agent": "agent-1", "payload": PAYLOAD}
    refused = assert_error(await call(cp, "POST", "/events", body), 400, "invalid_event", "id")
    assert "reserved for rollouts' child events" in refused["message"]
    batch = {"events": [body, {**body, "id": "web-1.agent-1"}]}
    answer = await call(cp, "POST", "/events/batch", batch)
    assert answer.status == 207, answer.body
    first, second = answer.json["results"]
    assert first["error"] == "invalid_event" and first["field"] == "id"
    assert "reserved for rollouts' child events" in first["message"]
    assert second["status"] == "accepted"
    assert_error(await call(cp, "GET", "/events/web-1_agent-1"), 404, "not_found")


async def test_a_selector_s_children_together_are_bounded(cp: ControlPlane) -> None:
    """A selector matching 90 agents and 3.1 MB of manifests would store 279 MB of child
    events: 413 ``rollout_too_large`` naming the numbers, and nothing stored; a plan too."""
    async with trio.open_nursery() as nursery:
        for index in range(90):
            nursery.start_soon(functools.partial(register, cp, f"big-{index:02}", fleet="big"))
    manifest = "a: " + "x" * 3_100_000 + "\n"
    body = {"id": "huge", "selector": "fleet=big", "payload": {"manifests": [manifest]}}
    refused = assert_error(
        await call(cp, "POST", "/events", body), 413, "rollout_too_large", "selector"
    )
    assert refused["message"].startswith("90 clusters x 3.1 MB = 279.")
    assert refused["message"].endswith("more than 256 MiB: split the rollout or the manifests")
    assert_error(await call(cp, "POST", "/plans", body), 413, "rollout_too_large", "selector")
    assert (await call(cp, "GET", "/rollouts")).json["items"] == []


async def test_a_rollout_and_a_plan_keep_their_token_s_id(cp: ControlPlane) -> None:
    """So that a standing rollout takes no agent more once its token is revoked."""
    token = await cp.new_token("team-a", Role.SUBMIT, ("team-a-*",))
    body = {"id": "kept", "target_agents": ["team-a-1"], "payload": PAYLOAD}
    assert (await call(cp, "POST", "/events", body, token=token)).status == 202
    planned = {**body, "id": "kept-plan"}
    assert (await call(cp, "POST", "/plans", planned, token=token)).status == 202
    assert (await call(cp, "POST", "/events", {**body, "id": "by-admin"})).status == 202
    async with open_store(cp.spec) as store:
        for rollout_id, text in (("kept", token), ("kept-plan", token), ("by-admin", cp.token)):
            record = await store.get_rollout(rollout_id)
            assert record is not None and text is not None
            assert record.spec.token_id == token_id_of(text) != ""
