"""``POST /events/{id}/cancel`` on a real control plane: a queued event is cancelled and never
delivered; one that was sent is not (409, saying its state); 404 and 403."""

from __future__ import annotations

from tests.bed.clients import assert_error, raw_agent
from tests.bed.harness import ControlPlane
from tests.cp.api.conftest import PAYLOAD, call
from transporter.security.tokens import Role


async def submit(cp: ControlPlane, agent: str) -> str:
    answer = await call(cp, "POST", "/events", {"target_agent": agent, "payload": PAYLOAD})
    assert answer.status == 202, answer.body
    event_id: str = answer.json["event_id"]
    return event_id


async def test_a_queued_event_is_cancelled_and_never_delivered(cp: ControlPlane) -> None:
    cancelled = await submit(cp, "late")
    answer = await call(cp, "POST", f"/events/{cancelled}/cancel")
    assert answer.status == 200, answer.body
    assert answer.json == {"event_id": cancelled, "state": "cancelled"}
    shown = await call(cp, "GET", f"/events/{cancelled}")
    assert shown.json["state"] == "cancelled"
    again = assert_error(
        await call(cp, "POST", f"/events/{cancelled}/cancel"), 409, "not_cancellable"
    )
    assert again["message"].startswith("event is cancelled")
    kept = await submit(cp, "late")
    # The agent comes: the outbox delivers in order, so the first it gets is the one kept.
    async with raw_agent(cp.agent_url, identity="late") as agent:
        await agent.register("late")
        delivered = await agent.next_delivery()
        assert delivered["id"] == kept
        sent = assert_error(
            await call(cp, "POST", f"/events/{kept}/cancel"), 409, "not_cancellable"
        )
        assert sent["message"].startswith("event is assigned")
    audit = await call(cp, "GET", "/audit")
    actions = [(e["action"], e["event_id"]) for e in audit.json["items"]]
    assert ("event.cancelled", cancelled) in actions


async def test_unknown_and_unreachable_events(cp: ControlPlane) -> None:
    assert_error(await call(cp, "POST", "/events/nothing/cancel"), 404, "not_found")
    theirs = await submit(cp, "team-b-1")
    token = await cp.new_token("team-a", Role.SUBMIT, ("team-a-*",))
    refused = await call(cp, "POST", f"/events/{theirs}/cancel", token=token)
    assert "team-b-1" not in assert_error(refused, 403, "forbidden")["message"]
    reader = await cp.new_token("reader", Role.READ, ("*",))
    assert_error(await call(cp, "POST", f"/events/{theirs}/cancel", token=reader), 403, "forbidden")
    assert (await call(cp, "GET", f"/events/{theirs}")).json["state"] == "queued"
