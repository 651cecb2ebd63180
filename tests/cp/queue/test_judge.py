"""Hostile and poison entries in a real control plane on a real redis-server: no entry stops the
consumer (a token that cannot be a header, an id that is not valid UTF-8, an API that fails or
raises), none is tried forever (an entry the API keeps failing is dead-lettered after
:data:`MAX_DELIVERIES`, one the store fails is not), a letter is in a token's view only when
the token was its (no one plants letters in another's), and an entry stored already whose token
was revoked before it was settled is settled, not refused."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.bed.clients import Answer, http
from tests.bed.harness import ControlPlane
from tests.bed.manifests import configmap, event_body, unique
from tests.bed.queue import QUEUE, append, entry, redis_cli, settled
from tests.bed.redis import RedisServer
from transporter.config.store_spec import StoreSpec
from transporter.cp.queue.consumer import MAX_DELIVERIES, QueueConsumer, QueueSettings
from transporter.cp.queue.judge import DISPATCH_TIMEOUT
from transporter.protocol.model import AuditEntry
from transporter.protocol.queue_entry import MAX_ENTRY_BYTES
from transporter.security.tokens import Role, token_id_of
from transporter.store.redis import RedisStore

pytestmark = pytest.mark.redis

type Receive = Callable[[], Awaitable[dict[str, Any]]]
type Send = Callable[[dict[str, Any]], Awaitable[None]]


@pytest.fixture
async def plane(nursery: trio.Nursery, tmp_path: Path, redis_server: RedisServer) -> ControlPlane:
    spec = StoreSpec.parse(redis_server.url)
    cp = ControlPlane(nursery, tmp_path / "cp", store=spec, queue_claim_after=0.5)
    await cp.start()
    return cp


async def letters(
    plane: ControlPlane, token: str | None, query: str = "", *, status: int = 200
) -> list[dict[str, Any]]:
    assert plane.bound is not None
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = f"{plane.bound.api_url}/queue/dead-letters{query}"
    answer: Answer = await http(url, headers=headers)
    assert answer.status == status, answer
    if status != 200:
        return []
    items: list[dict[str, Any]] = answer.json["items"]
    return items


async def test_tokens_that_cannot_be_headers_are_refused_and_the_plane_goes_on(
    plane: ControlPlane, redis_server: RedisServer
) -> None:
    """A newline in a token failed the request's parsing (not a 401): every control plane
    that took the entry stopped, and again after each restart."""
    token = await plane.new_token("ci", Role.SUBMIT, ("*",))
    body = event_body("site-1", configmap("x"), id=unique("h"))
    hostile = ["tpt_abc\nx", f"{token}\r\nX-Evil: 1", "tpt_\u00e9\u00e9", token + " ", "\x00"]
    ids = await append(redis_server, *(entry(body, bad) for bad in hostile))
    name = unique("after")
    await append(redis_server, entry(event_body("site-1", configmap(name), id=name), token))
    await settled(redis_server)
    assert (await plane.client.event(name)).event.id == name  # still consuming
    found = {item["entry_id"]: item for item in await letters(plane, plane.token)}
    assert set(found) == set(ids)
    for item in found.values():
        assert (item["status"], item["error"], item["token_id"]) == (401, "unauthorized", None)


async def test_an_id_that_is_not_utf8_is_dead_lettered_cleanly(
    plane: ControlPlane, redis_server: RedisServer
) -> None:
    """A lone surrogate (valid JSON, not UTF-8) failed the letter's write: the plane stopped."""
    text = '{"id": "\\ud800", "target_agent": "site-1", "payload": {"manifests": []}}'
    (entry_id,) = await append(redis_server, entry(text, plane.token))
    await settled(redis_server)
    (letter,) = await letters(plane, plane.token)
    assert letter["entry_id"] == entry_id and letter["status"] == 400
    assert letter["event_id"] in (None, "?")  # replaced, never the surrogate


async def test_a_letter_is_shown_to_a_token_only_when_it_was_that_token(
    plane: ControlPlane, redis_server: RedisServer
) -> None:
    victim = await plane.new_token("victim", Role.SUBMIT, ("*",))
    victim_id = token_id_of(victim)
    forged = f"tpt_{victim_id}_{'A' * 43}"  # its id, another secret
    body = event_body("site-1", configmap("x"), id="planted")
    too_big = "x" * (MAX_ENTRY_BYTES + 1)
    ids = await append(
        redis_server, entry(body, forged), entry(too_big, forged), entry(too_big, victim)
    )
    await settled(redis_server)
    by_entry = {item["entry_id"]: item for item in await letters(plane, plane.token)}
    assert [by_entry[i]["token_id"] for i in ids] == [None, None, victim_id]
    assert [item["entry_id"] for item in await letters(plane, victim)] == [ids[2]]
    # Looked up by entry (what --wait does): the victim's own only.
    assert await letters(plane, victim, f"?entry_id={ids[0]}") == []
    assert [i["entry_id"] for i in await letters(plane, plane.token, f"?entry_id={ids[0]}")] == [
        ids[0]
    ]
    assert [i["entry_id"] for i in await letters(plane, victim, f"?entry_id={ids[2]}")] == [ids[2]]
    await letters(plane, victim, "?entry_id=nope", status=400)


async def test_an_entry_stored_before_its_token_was_revoked_is_settled(
    plane: ControlPlane, redis_server: RedisServer
) -> None:
    """A replica stored the event and died before settling; the token was revoked before
    another claimed the entry: the event is there, the same request, so no letter."""
    token = await plane.new_token("soon-gone", Role.SUBMIT, ("*",))
    token_id = token_id_of(token)
    assert token_id is not None
    name = unique("stored")
    body = event_body("site-1", configmap(name), id=name)
    await plane.client_with(token).submit(body)  # what the replica stored
    await plane.stop()
    async with RedisStore.open(redis_server.url) as store:
        await append(redis_server, entry(body, token))
        assert await store.queue_read("died", count=1, block=0.05)  # held by the dead replica
        await store.revoke_token(token_id, 1.0, AuditEntry(at=1.0, action="token.revoked"))
    await plane.start()
    await settled(redis_server)
    assert await letters(plane, plane.token) == []
    assert (await plane.client.event(name)).event.created_by == "token:soon-gone"


class BrokenApi:
    """The API failing as a bug would make it: answering ``status``, or raising."""

    def __init__(self, status: int | None, *, enough: int = 0) -> None:
        self.status = status
        self.calls = 0
        self.enough = enough
        self.called_enough = trio.Event()
        """Set at the ``enough``-th call."""

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        self.calls += 1
        if self.calls == self.enough:
            self.called_enough.set()
        await receive()
        if self.status is None:
            raise ValueError("Header values must not contain newline characters")
        body = json.dumps({"error": "internal", "message": f"failed {self.calls}"}).encode()
        await send({"type": "http.response.start", "status": self.status, "headers": []})
        await send({"type": "http.response.body", "body": body})


@pytest.mark.parametrize("status", [500, None])
async def test_an_entry_that_keeps_failing_is_given_up_on(
    redis_server: RedisServer, status: int | None
) -> None:
    """A 500 (or an error of our own) is tried :data:`MAX_DELIVERIES` times, then dead-
    lettered with it; the consumer runs on throughout."""
    app = BrokenApi(status)
    settings = QueueSettings(claim_after=0.2, block=0.05)
    async with RedisStore.open(redis_server.url) as store, trio.open_nursery() as nursery:
        await nursery.start(QueueConsumer(store, app, settings).run)
        (entry_id,) = await append(redis_server, entry(event_body("a", id="p"), None))
        await settled(redis_server)
        (letter,) = (await store.dead_letters()).items
        nursery.cancel_scope.cancel()
    assert letter.entry_id == entry_id and letter.status == (status or 500)
    assert app.calls == MAX_DELIVERIES
    assert letter.token_id is None
    assert "tried 5 times" in letter.message if status else "ValueError" in letter.message


async def test_an_entry_the_store_fails_is_never_given_up_on(redis_server: RedisServer) -> None:
    app = BrokenApi(503, enough=MAX_DELIVERIES + 2)
    settings = QueueSettings(claim_after=0.2, block=0.05)
    async with RedisStore.open(redis_server.url) as store, trio.open_nursery() as nursery:
        await nursery.start(QueueConsumer(store, app, settings).run)
        await append(redis_server, entry(event_body("a", id="o"), None))
        with trio.fail_after(30):
            await app.called_enough.wait()
        nursery.cancel_scope.cancel()
    assert redis_cli(redis_server, "XLEN", QUEUE) == "1"  # still there, pending
    assert redis_cli(redis_server, "XLEN", QUEUE + ":dead") == "0"


def test_an_entry_is_not_claimed_while_it_may_still_be_submitted() -> None:
    assert QueueSettings().dispatch_timeout < QueueSettings().claim_after
    assert QueueSettings(claim_after=1).dispatch_timeout == 0.5
    assert QueueSettings(claim_after=600).dispatch_timeout == DISPATCH_TIMEOUT
