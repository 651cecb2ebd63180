"""``GET /rollouts``, ``GET /rollouts/{id}``, ``approve``, ``cancel`` and ``close`` on a real
control plane (SQLite, real HTTP; agents that never connect, so child events stay queued)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from tests.bed.clients import assert_error
from tests.bed.harness import ControlPlane
from tests.cp.api.conftest import PAYLOAD, call, register
from transporter.cp.api.rollouts import SCAN_PAGE, SCAN_PAGES
from transporter.cp.openapi.bounds import ROLLOUTS_LIMIT
from transporter.security.tokens import Role

SUMMARY = {
    "id", "kind", "state", "message", "created_at", "created_by", "selector", "agents",
    "standing", "wave", "waves", "counts", "total", "updated_at",
}  # fmt: skip
POLL = 0.05


async def rollout(cp: ControlPlane, rollout_id: str, **fields: Any) -> dict[str, Any]:
    body = {"id": rollout_id, "payload": PAYLOAD, **fields}
    if "selector" not in body and "target_agents" not in body:
        body["target_agents"] = ["offline-1", "offline-2"]
    answer = await call(cp, "POST", "/events", body)
    assert answer.status == 202, answer.body
    data: dict[str, Any] = answer.json
    return data


async def until(
    cp: ControlPlane, rollout_id: str, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The rollout's view once ``done`` holds for it (the engine moves it in the background;
    there is no request that waits for a rollout to change)."""
    with trio.fail_after(10):
        while True:
            view: dict[str, Any] = (await call(cp, "GET", f"/rollouts/{rollout_id}")).json
            if done(view):
                return view
            await trio.sleep(POLL)


async def test_listing_newest_first_by_kind_and_state_a_page_at_a_time(cp: ControlPlane) -> None:
    await rollout(cp, "r-1")
    await rollout(cp, "r-2")
    plan = await call(
        cp, "POST", "/plans", {"id": "p-1", "target_agents": ["x"], "payload": PAYLOAD}
    )
    assert plan.status == 202, plan.body
    listed = await call(cp, "GET", "/rollouts")
    assert listed.status == 200
    assert [item["id"] for item in listed.json["items"]] == ["p-1", "r-2", "r-1"]
    assert all(set(item) == SUMMARY for item in listed.json["items"])
    assert listed.json["cursor"] is None
    kinds = await call(cp, "GET", "/rollouts?kind=apply")
    assert [item["id"] for item in kinds.json["items"]] == ["r-2", "r-1"]
    plans = await call(cp, "GET", "/plans")
    assert [item["id"] for item in plans.json["items"]] == ["p-1"]
    assert (await call(cp, "GET", "/rollouts?state=completed")).json["items"] == []
    first = await call(cp, "GET", "/rollouts?limit=2")
    assert [item["id"] for item in first.json["items"]] == ["p-1", "r-2"]
    rest = await call(cp, "GET", f"/rollouts?limit=2&cursor={first.json['cursor']}")
    assert [item["id"] for item in rest.json["items"]] == ["r-1"]
    for query in ("state=bogus", "kind=bogus", "limit=0", "limit=501", "cursor=nonsense"):
        assert_error(await call(cp, "GET", f"/rollouts?{query}"), 400, "invalid_query")


async def test_one_rollout_in_full(cp: ControlPlane) -> None:
    await rollout(cp, "full", strategy={"max_parallel": 1, "max_failures": 3}, labels={"a": "b"})
    view = await until(cp, "full", lambda v: v["counts"].get("queued") == 1)
    assert set(view) == SUMMARY | {"strategy", "clusters", "timeline", "plan_id"}
    assert view["strategy"] == {"max_parallel": 1, "max_failures": 3, "waves": []}
    assert view["agents"] == ["offline-1", "offline-2"]
    assert view["total"] == 2 and view["counts"] == {"queued": 1, "pending": 1}
    assert {c["agent_id"]: c["state"] for c in view["clusters"]} == {
        "offline-1": "queued",
        "offline-2": "pending",
    }
    assert view["timeline"][0]["what"] == "accepted"
    assert_error(await call(cp, "GET", "/rollouts/unknown"), 404, "not_found")


async def test_cancel_starts_nothing_more(cp: ControlPlane) -> None:
    await rollout(cp, "stop", strategy={"max_parallel": 1})
    await until(cp, "stop", lambda v: v["counts"].get("queued") == 1)
    answer = await call(cp, "POST", "/rollouts/stop/cancel")
    assert answer.status == 200, answer.body
    assert answer.json["rollout_id"] == "stop"
    assert (answer.json["cancelled"], answer.json["running"]) == (2, 0)
    view = await until(cp, "stop", lambda v: v["state"] == "cancelled")
    assert view["counts"] == {"cancelled": 2}
    child = await call(cp, "GET", "/events/stop_offline-1")
    assert child.json["state"] == "cancelled"
    assert_error(await call(cp, "POST", "/rollouts/nothing/cancel"), 404, "not_found")
    assert_error(await call(cp, "POST", "/rollouts/stop/cancel", {"x": 1}), 400, "invalid_request")


async def test_approve_releases_the_wave_that_waits(cp: ControlPlane) -> None:
    await register(cp, "canary-1", ring="canary")
    await register(cp, "main-1", ring="main")
    waves = [{"selector": "ring=canary", "approval": True}, {"selector": ""}]
    accepted = await rollout(cp, "gate", selector="ring", strategy={"waves": waves})
    assert accepted["waves"] == [["canary-1"], ["main-1"]]
    await until(cp, "gate", lambda v: v["state"] == "awaiting_approval")
    for bad, field in (
        ({"wave": "0"}, "wave"),
        ({"wave": -1}, "wave"),
        ({"wave": None}, "wave"),
        ({"x": 1}, "x"),
    ):
        assert_error(
            await call(cp, "POST", "/rollouts/gate/approve", bad), 400, "invalid_request", field
        )
    assert_error(
        await call(cp, "POST", "/rollouts/gate/approve", {"wave": 1}), 409, "nothing_to_approve"
    )
    answer = await call(cp, "POST", "/rollouts/gate/approve")
    assert answer.status == 200, answer.body
    assert answer.json == {"rollout_id": "gate", "approved": 0}
    await until(cp, "gate", lambda v: v["counts"].get("queued") == 1)
    assert_error(await call(cp, "POST", "/rollouts/gate/approve", {}), 409, "nothing_to_approve")
    assert_error(await call(cp, "POST", "/rollouts/nothing/approve"), 404, "not_found")


async def test_close_a_standing_rollout(cp: ControlPlane) -> None:
    await rollout(cp, "stand", selector="env=none", standing=True, allow_empty=True)
    answer = await call(cp, "POST", "/rollouts/stand/close", {})
    assert answer.status == 200, answer.body
    assert answer.json["rollout_id"] == "stand" and answer.json["closed"] is True
    assert_error(await call(cp, "POST", "/rollouts/nothing/close"), 404, "not_found")


async def test_a_token_must_reach_every_cluster_to_act_on_a_rollout(cp: ControlPlane) -> None:
    await rollout(cp, "wide", target_agents=["team-a-1", "team-b-1"])
    token = await cp.new_token("team-a", Role.SUBMIT, ("team-a-*",))
    for op in ("approve", "cancel", "close"):
        refused = await call(cp, "POST", f"/rollouts/wide/{op}", token=token)
        assert "team-b-1" in assert_error(refused, 403, "forbidden")["message"]
    reader = await cp.new_token("reader", Role.READ, ("*",))
    assert_error(await call(cp, "POST", "/rollouts/wide/cancel", token=reader), 403, "forbidden")
    assert (await call(cp, "GET", "/rollouts/wide", token=reader)).status == 200


async def test_a_scoped_token_s_listing_reads_a_bounded_number_of_rollouts(
    cp: ControlPlane,
) -> None:
    """Each record is read whole: one answer to a token that sees only some agents reads at
    most as many as the largest page (100), then gives a cursor to go on from."""
    token = await cp.new_token("team-a", Role.READ, ("team-a-*",))
    await rollout(cp, "a-first", target_agents=["team-a-1"])
    assert SCAN_PAGE * SCAN_PAGES == ROLLOUTS_LIMIT
    for index in range(ROLLOUTS_LIMIT):  # newer: listed before it
        await rollout(cp, f"b-{index:03}", target_agents=["team-b-1"])
    first = await call(cp, "GET", "/rollouts?limit=100", token=token)
    assert first.status == 200, first.body
    assert first.json["items"] == [] and first.json["cursor"] is not None
    rest = await call(cp, "GET", f"/rollouts?limit=100&cursor={first.json['cursor']}", token=token)
    assert [item["id"] for item in rest.json["items"]] == ["a-first"]
    assert rest.json["cursor"] is None


async def test_a_scoped_token_does_not_see_a_selector_rollout_it_may_not_reach(
    cp: ControlPlane,
) -> None:
    """A standing rollout with no cluster yet is not thereby anyone's: a scoped token sees a
    selector's rollout only when it was submitted within that token's patterns."""
    await rollout(cp, "everyone", selector="env=staging", standing=True, allow_empty=True)
    team_a = await cp.new_token("team-a", Role.SUBMIT, ("team-a-*",))
    body = {"id": "team-a-only", "selector": "env=staging", "payload": PAYLOAD}
    mine = await call(cp, "POST", "/events", {**body, "standing": True, "allow_empty": True},
                      token=team_a)  # fmt: skip
    assert mine.status == 202, mine.body
    reader = await cp.new_token("reader-a", Role.READ, ("team-a-*",))
    for token in (team_a, reader):
        seen = await call(cp, "GET", "/rollouts", token=token)
        assert [item["id"] for item in seen.json["items"]] == ["team-a-only"]
        assert_error(await call(cp, "GET", "/rollouts/everyone", token=token), 403, "forbidden")
        assert (await call(cp, "GET", "/rollouts/team-a-only", token=token)).status == 200
    other = await cp.new_token("reader-b", Role.READ, ("team-b-*",))
    assert (await call(cp, "GET", "/rollouts", token=other)).json["items"] == []


async def test_a_scoped_token_may_not_act_on_a_selector_rollout_beyond_its_reach(
    cp: ControlPlane,
) -> None:
    """A standing rollout submitted unscoped, with no cluster yet: a team-a token may not
    approve, cancel or close it (it may take any agent later); its own it may."""
    await rollout(cp, "everyone", selector="env=staging", standing=True, allow_empty=True)
    team_a = await cp.new_token("team-a", Role.SUBMIT, ("team-a-*",))
    for op in ("approve", "cancel", "close"):
        refused = await call(cp, "POST", f"/rollouts/everyone/{op}", token=team_a)
        assert (
            "may take agents beyond your token's reach"
            in assert_error(refused, 403, "forbidden")["message"]
        )
    body = {"id": "mine", "selector": "env=staging", "standing": True, "allow_empty": True}
    mine = await call(cp, "POST", "/events", {**body, "payload": PAYLOAD}, token=team_a)
    assert mine.status == 202, mine.body
    closed = await call(cp, "POST", "/rollouts/mine/close", token=team_a)
    assert closed.status == 200, closed.body
