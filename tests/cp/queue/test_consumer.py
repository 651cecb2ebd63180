"""Queue mode in a real control plane on a real redis-server: entries appended as a producer
appends them are stored as POST /events stores them (token, scopes, created_by, the audit), once
however often they come, and deleted from the queue; refused ones end in the dead-letter stream
with the API's error, which GET /queue/dead-letters shows (all to an admin, their own to other
tokens)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from tests.bed.clients import Answer, assert_error, http
from tests.bed.harness import ControlPlane
from tests.bed.manifests import configmap, event_body, unique
from tests.bed.queue import append, entry, redis_cli, settled
from tests.bed.redis import RedisServer
from transporter.config.store_spec import StoreSpec
from transporter.protocol.model import AuditEntry
from transporter.protocol.queue_entry import MAX_ENTRY_BYTES
from transporter.security.tokens import Role, token_id_of
from transporter.store import open_store

pytestmark = pytest.mark.redis


@pytest.fixture
async def plane(nursery: trio.Nursery, tmp_path: Path, redis_server: RedisServer) -> ControlPlane:
    cp = ControlPlane(nursery, tmp_path / "cp", store=StoreSpec.parse(redis_server.url))
    await cp.start()
    return cp


async def letters(plane: ControlPlane, token: str | None, query: str = "") -> Answer:
    assert plane.bound is not None
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await http(f"{plane.bound.api_url}/queue/dead-letters{query}", headers=headers)


async def test_an_entry_is_stored_as_a_post_would_store_it(
    plane: ControlPlane, redis_server: RedisServer
) -> None:
    token = await plane.new_token("ci-queue", Role.SUBMIT, ("team-*",))
    name = unique("q")
    await append(redis_server, entry(event_body("team-a", configmap(name), id=name), token))
    await settled(redis_server)
    record = await plane.client.event(name)
    assert record.event.created_by == "token:ci-queue"
    assert record.event.target_agent == "team-a"
    assert record.event.signature  # signed as every accepted event
    audit = await plane.client.audit(limit=20)
    created = [a for a in audit if a.event_id == name]
    assert [a.actor for a in created] == ["token:ci-queue"]
    assert redis_cli(redis_server, "XLEN", "transporter:queue") == "0"  # no token lingers
    assert (await letters(plane, plane.token)).json == {"items": [], "cursor": None}


async def test_an_entry_taken_twice_is_one_event(
    plane: ControlPlane, redis_server: RedisServer
) -> None:
    """What a replica that died after storing and before settling leaves behind: the same
    entry again, which stores nothing more and is settled."""
    name = unique("twice")
    fields = entry(event_body("site-1", configmap(name), id=name), plane.token)
    await append(redis_server, fields, fields)
    await settled(redis_server)
    events = await plane.client.events(agent="site-1")
    assert [e.event.id for e in events].count(name) == 1
    assert (await letters(plane, plane.token)).json["items"] == []


async def _refusals(plane: ControlPlane) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    scoped = await plane.new_token("team-a-ci", Role.SUBMIT, ("team-a-*",))
    reader = await plane.new_token("reader", Role.READ, ("*",))
    revoked = await plane.new_token("gone", Role.SUBMIT, ("*",))
    gone_id = token_id_of(revoked)
    assert gone_id is not None
    async with open_store(plane.spec) as store:
        await store.revoke_token(gone_id, 1.0, AuditEntry(at=1.0, action="token.revoked"))
    good = configmap("fine")
    taken = unique("taken")
    cases: dict[str, dict[str, str]] = {
        "bad_json": entry('{"target_agent": "team-a-1", ', scoped),
        "no_token": entry(event_body("team-a-1", good, id=unique("n")), None),
        "unknown_token": entry(event_body("team-a-1", good, id=unique("u")), "tpt_0123456789ab_x"),
        "revoked_token": entry(event_body("team-a-1", good, id=unique("r")), revoked),
        "read_only": entry(event_body("team-a-1", good, id=unique("ro")), reader),
        "out_of_scope": entry(event_body("team-b-1", good, id=unique("o")), scoped),
        "invalid_manifest": entry(event_body("team-a-1", "kind: [", id=unique("i")), scoped),
        "oversize": entry("x" * (MAX_ENTRY_BYTES + 1), scoped),
        "old_format": {**entry(event_body("team-a-1", good), scoped), "v": "0"},
        "conflict": entry(event_body("team-a-1", configmap("other"), id=taken), scoped),
    }
    await plane.client.submit(event_body("team-a-1", good, id=taken))
    return cases, {"scoped": scoped, "reader": reader}


EXPECTED: dict[str, tuple[int, str, str | None]] = {
    "bad_json": (400, "invalid_event", "body"),
    "no_token": (401, "unauthorized", None),
    "unknown_token": (401, "unauthorized", None),
    "revoked_token": (401, "unauthorized", None),
    "read_only": (403, "forbidden", None),
    "out_of_scope": (403, "forbidden", None),
    "invalid_manifest": (400, "invalid_event", "payload.manifests[0]"),
    "oversize": (413, "event_too_large", "body"),
    "old_format": (400, "invalid_entry", "v"),
    "conflict": (409, "conflict", "id"),
}


async def test_refused_entries_end_in_the_dead_letter_stream_with_their_error(
    plane: ControlPlane, redis_server: RedisServer
) -> None:
    cases, tokens = await _refusals(plane)
    ids = await append(redis_server, *cases.values())
    await settled(redis_server)
    answer = await letters(plane, plane.token)
    assert answer.status == 200
    by_entry = {item["entry_id"]: item for item in answer.json["items"]}
    assert set(by_entry) == set(ids)
    for (case, fields), entry_id in zip(cases.items(), ids, strict=True):
        letter = by_entry[entry_id]
        status, error, field = EXPECTED[case]
        assert (letter["status"], letter["error"]) == (status, error), (case, letter)
        if field is not None:
            assert letter["field"] == field, (case, letter)
        assert letter["message"], case
        assert fields["token"] not in str(letter) or not fields["token"], case  # never the token
    scoped_id = token_id_of(tokens["scoped"])
    conflict = by_entry[ids[list(cases).index("conflict")]]
    assert conflict["token_id"] == scoped_id and conflict["event_id"]
    # Only an admin sees every letter; another token its own entries'.
    own = await letters(plane, tokens["scoped"])
    assert own.status == 200
    mine = {item["entry_id"] for item in own.json["items"]}
    assert mine == {by_entry[i]["entry_id"] for i in ids if by_entry[i]["token_id"] == scoped_id}
    assert len(mine) == 6
    assert (await letters(plane, tokens["reader"])).json["items"] == [
        by_entry[ids[list(cases).index("read_only")]]
    ]
    assert_error(await letters(plane, None), 401, "unauthorized")


async def test_dead_letters_come_in_pages(plane: ControlPlane, redis_server: RedisServer) -> None:
    await append(redis_server, *(entry("not json", plane.token) for _ in range(5)))
    await settled(redis_server)
    seen: list[Any] = []
    cursor = ""
    while True:
        page = (await letters(plane, plane.token, f"?limit=2{cursor}")).json
        seen += page["items"]
        if page["cursor"] is None:
            break
        cursor = f"&cursor={page['cursor']}"
    assert len(seen) == 5 and len({item["id"] for item in seen}) == 5
    assert [item["id"] for item in seen] == sorted((item["id"] for item in seen), reverse=True)
    assert_error(await letters(plane, plane.token, "?cursor=nope"), 400, "invalid_query")


async def test_the_embedded_store_has_no_queue(nursery: trio.Nursery, tmp_path: Path) -> None:
    plane = ControlPlane(nursery, tmp_path / "cp")
    await plane.start()
    data = assert_error(await letters(plane, plane.token), 404, "no_queue")
    assert "Redis" in data["message"]
