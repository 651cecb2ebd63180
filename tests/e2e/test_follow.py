"""Following an event: a waiting ``GET /events/{id}`` answers with its progress, without the
manifests unless asked, and wakes on every change written (no change lost between the read and
the wait)."""

from __future__ import annotations

import trio

from tests.bed.clients import assert_error, http
from tests.bed.harness import ControlPlane
from tests.bed.manifests import configmap, event_body

BIG = 200_000


async def get(cp: ControlPlane, query: str, event_id: str) -> dict[str, object]:
    assert cp.bound is not None
    url = f"{cp.bound.api_url}/events/{event_id}?{query}"
    answer = await http(url, "GET", None, headers=cp.headers)
    assert answer.status == 200, answer.body
    data: dict[str, object] = answer.json
    return data


def manifests(record: dict[str, object]) -> list[str]:
    event = record["event"]
    assert isinstance(event, dict)
    found: list[str] = event["payload"]["manifests"]
    return found


async def test_a_waiting_read_leaves_the_manifests_out_unless_asked(cp: ControlPlane) -> None:
    body = event_body("nobody-yet", configmap("big") + f"data:\n  k: {'v' * BIG}\n")
    submitted = await cp.client.submit(body)
    event_id = submitted.event_id
    assert len(manifests(await get(cp, "", event_id))[0]) > BIG  # a plain read: all of it
    # Waiting (here for a change that does not come, the agent never registered): progress only.
    waited = await get(cp, "wait=0.2&since=0", event_id)
    assert manifests(waited) == []
    assert waited["timeline"] and waited["state"] == "queued"
    assert len(manifests(await get(cp, "wait=0.2&since=5&manifests=true", event_id))[0]) > BIG
    assert manifests(await get(cp, "manifests=false", event_id)) == []
    assert cp.bound is not None
    bad = await http(
        f"{cp.bound.api_url}/events/{event_id}?manifests=maybe", "GET", None, headers=cp.headers
    )
    assert_error(bad, 400, "invalid_query")
    assert "manifests must be true or false" in bad.json["message"]


async def test_a_waiting_read_wakes_when_the_event_changes(cp: ControlPlane) -> None:
    """It waits for a timeline longer than ``since``; the event's expiry writes one."""
    submitted = await cp.client.submit({**event_body("nobody", configmap("short")), "ttl": 1})
    start = trio.current_time()
    record = await get(cp, "wait=30&since=1", submitted.event_id)  # accepted is its first
    assert record["state"] == "expired"
    assert trio.current_time() - start < 15  # woken, not timed out
