"""Plans over HTTP on a real control plane: ``POST /plans``, ``GET /plans/{id}`` with what an
agent reported (a Secret's values never shown, whatever the agent sent), ``apply`` (409 before
the plan finished, 410 after its ttl, 202 with the agents whose plan completed, their child
events expecting what the plan saw)."""

from __future__ import annotations

import time
from typing import Any

import trio

from tests.bed.clients import RawAgent, assert_error, raw_agent
from tests.bed.harness import ControlPlane
from tests.cp.api.conftest import PAYLOAD, call

SECRET = """apiVersion: v1
kind: Secret
metadata: {name: db, namespace: default}
stringData: {password: hunter2-hunter2}
"""
FINGERPRINT = "0123456789abcdef0123456789abcdef"
RESULT = {
    "api_version": "v1",
    "kind": "Secret",
    "name": "db",
    "namespace": "default",
    "status": "would_change",
    "message": "",
    "diff": [{"path": "stringData.password", "op": "change", "old": "x", "new": "hunter2-hunter2"}],
    "fingerprint": FINGERPRINT,
}


async def plan(cp: ControlPlane, plan_id: str, **fields: Any) -> dict[str, Any]:
    body = {"id": plan_id, "target_agents": ["planner"], "payload": PAYLOAD, **fields}
    answer = await call(cp, "POST", "/plans", body)
    assert answer.status == 202, answer.body
    data: dict[str, Any] = answer.json
    return data


async def test_a_plan_is_accepted_shown_and_not_applied_before_it_finished(
    cp: ControlPlane,
) -> None:
    accepted = await plan(cp, "p-1", ttl=600)
    assert accepted == {"plan_id": "p-1", "status": "accepted", "agents": ["planner"]}
    again = await call(
        cp,
        "POST",
        "/plans",
        {"id": "p-1", "target_agents": ["planner"], "payload": PAYLOAD, "ttl": 600},
    )
    assert again.status == 200 and again.json["status"] == "exists"
    shown = await call(cp, "GET", "/plans/p-1")
    assert shown.status == 200, shown.body
    assert shown.json["kind"] == "plan"
    assert shown.json["expires_at"] == shown.json["created_at"] + 600
    assert [c["agent_id"] for c in shown.json["clusters"]] == ["planner"]
    assert shown.json["clusters"][0]["resources"] == []
    assert_error(await call(cp, "POST", "/plans/p-1/apply"), 409, "plan_not_ready")
    assert_error(await call(cp, "POST", "/plans/nothing/apply"), 404, "not_found")
    assert_error(await call(cp, "GET", "/plans/nothing"), 404, "not_found")
    rollout = {"id": "r-1", "target_agents": ["x"], "payload": PAYLOAD}
    assert (await call(cp, "POST", "/events", rollout)).status == 202
    assert_error(await call(cp, "GET", "/plans/r-1"), 404, "not_found")
    bad = {"wait_ready": "yes"}
    assert_error(
        await call(cp, "POST", "/plans/p-1/apply", bad), 400, "invalid_request", "wait_ready"
    )


async def test_invalid_plans_name_the_field(cp: ControlPlane) -> None:
    for body, field in [
        ({"target_agents": ["a"], "payload": PAYLOAD, "strategy": {}}, "strategy"),
        (
            {"target_agents": ["a"], "payload": {**PAYLOAD, "wait_ready": True}},
            "payload.wait_ready",
        ),
        ({"payload": PAYLOAD}, "target_agents"),
        ({"selector": "a=b", "payload": PAYLOAD, "ttl": 0}, "ttl"),
    ]:
        assert_error(await call(cp, "POST", "/plans", body), 400, "invalid_event", field)
    assert_error(
        await call(cp, "POST", "/plans", {"selector": "a=b", "payload": PAYLOAD}), 400, "no_match"
    )


async def report_plan(agent: RawAgent, event: dict[str, Any]) -> None:
    await agent.report(event["id"], 1, "in_progress", phase="applying")
    await agent.report(event["id"], 2, "completed", phase="completed", resources=[RESULT])
    for _ in range(2):
        assert (await agent.receive())["type"] == "status_ack"


async def test_a_finished_plan_shows_no_secret_and_applies_what_it_saw(cp: ControlPlane) -> None:
    async with raw_agent(cp.agent_url, identity="planner") as agent:
        await agent.register("planner")
        await plan(cp, "p-2", payload={"manifests": [SECRET]})
        event = await agent.next_delivery()
        assert event["id"] == "p-2_planner" and event["payload"]["action"] == "plan"
        await report_plan(agent, event)
        shown = await until_finished(cp, "p-2")
        assert "hunter2" not in repr(shown)
        (result,) = shown["clusters"][0]["resources"]
        assert result["diff"] == [
            {
                "path": "stringData.password",
                "op": "change",
                "old": "<redacted>",
                "new": "<redacted>",
            }
        ]
        assert result["fingerprint"] == FINGERPRINT
        assert shown["results_for"] == 1
        one = await call(cp, "GET", "/plans/p-2?agent=planner")
        assert one.json["clusters"] == shown["clusters"]
        assert_error(await call(cp, "GET", "/plans/p-2?agent=nobody"), 404, "not_found")
        child = await call(cp, "GET", "/events/p-2_planner")  # the event's own view, too
        assert b"hunter2" not in child.body
        assert child.json["resources"][0]["diff"][0]["new"] == "<redacted>"
        answer = await call(
            cp, "POST", "/plans/p-2/apply", {"id": "go", "strategy": {"max_parallel": 1}}
        )
        assert answer.status == 202, answer.body
        assert answer.json == {
            "rollout_id": "go",
            "status": "accepted",
            "agents": ["planner"],
            "waves": [["planner"]],
        }
        applied = await agent.next_delivery()
        assert applied["id"] == "go_planner" and applied["payload"]["action"] == "apply"
        assert applied["payload"]["expect"] == {"/Secret/default/db": FINGERPRINT}
    view = await call(cp, "GET", "/rollouts/go")
    assert view.json["plan_id"] == "p-2"
    again = await call(
        cp, "POST", "/plans/p-2/apply", {"id": "go", "strategy": {"max_parallel": 1}}
    )
    assert again.status == 200 and again.json["status"] == "exists"


async def until_finished(cp: ControlPlane, plan_id: str) -> dict[str, Any]:
    with trio.fail_after(10):
        while True:
            shown: dict[str, Any] = (await call(cp, "GET", f"/plans/{plan_id}")).json
            if shown["state"] in ("completed", "failed"):
                return shown
            await trio.sleep(0.05)


async def test_a_plan_past_its_ttl_is_not_applied(cp: ControlPlane) -> None:
    """One cluster planned; the other's agent never came, so its dry run expired within the
    plan's first half: the plan can be applied until its ttl has passed, and then not."""
    async with raw_agent(cp.agent_url, identity="planner") as agent:
        await agent.register("planner")
        await plan(cp, "old", ttl=3, target_agents=["absent", "planner"])
        await report_plan(agent, await agent.next_delivery())
        shown = await until_finished(cp, "old")
    states = {c["agent_id"]: c["state"] for c in shown["clusters"]}
    assert states == {"planner": "completed", "absent": "expired"}
    await trio.sleep(max(0.0, shown["expires_at"] - time.time()) + 0.1)  # a deadline, not a poll
    assert_error(await call(cp, "POST", "/plans/old/apply"), 410, "plan_expired")
