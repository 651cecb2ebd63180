"""One live session per agent across replicas (cp/sessions.py), on a real redis-server: two
store objects stand for two replicas; the hints are handed over by hand, in the orders the
channel can bring them (a hint may come before the reply to one's own claim, or never; then
the resync's look at the store finds what it would have told)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import coredis
import pytest
import trio

from tests.bed.logwatch import LogWatch
from tests.bed.redis import RedisServer
from transporter.config.store_spec import StoreSpec
from transporter.cp.live import Connection, LiveAgents
from transporter.cp.sessions import Sessions
from transporter.protocol.model import AgentInfo
from transporter.store import Store, open_store
from transporter.store.base import StoreError

pytestmark = pytest.mark.redis


def connection(agent_id: str) -> Connection:
    async def sender(text: str) -> None:
        del text

    now = time.time()
    return Connection(
        info=AgentInfo(agent_id),
        connected_since=now,
        sender=sender,
        cancel_scope=trio.CancelScope(),
        last_heard=now,
    )


@asynccontextmanager
async def replica(server: RedisServer) -> AsyncIterator[tuple[Store, LiveAgents, Sessions]]:
    async with open_store(StoreSpec.parse(server.url)) as store:
        live = LiveAgents()
        yield store, live, Sessions(store, live)


def closed(c: Connection) -> bool:
    return c.cancel_scope.cancel_called and c.moved_elsewhere


async def test_the_older_session_is_closed_on_its_replica_and_the_newer_kept(
    redis_server: RedisServer,
) -> None:
    async with replica(redis_server) as (_, live_a, a), replica(redis_server) as (_, live_b, b):
        old, new = connection("site"), connection("site")
        live_a.attach(old)
        await a.claim(old)
        live_b.attach(new)
        await b.claim(new)
        assert (old.session, new.session) == (1, 2)
        b.claimed("site", old.session)  # the hint of the older claim, late: ignored
        assert not closed(new)
        a.claimed("site", new.session)
        assert closed(old)
        assert await a.moved_on(old) and not await b.moved_on(new)


async def test_a_claim_heard_before_the_reply_to_ones_own_is_kept_for_it(
    redis_server: RedisServer,
) -> None:
    async with replica(redis_server) as (store, live, sessions):
        mine = connection("site")
        live.attach(mine)
        # Another replica's claims, numbered around ours, heard before ours comes back.
        sessions.claimed("site", 7)
        sessions.claimed("site", 3)
        for _ in range(5):
            await store.claim_session("site")  # 1-5 elsewhere; ours is 6
        await sessions.claim(mine)
        assert mine.session == 6 and closed(mine)  # 7 is newer: ours was overtaken
        other = connection("other")
        live.attach(other)
        sessions.claimed("other", 1)
        await store.claim_session("other")
        await sessions.claim(other)
        assert other.session == 2 and not closed(other)  # the one heard was older


async def test_a_connection_ending_after_a_missed_hint_finds_its_agent_moved_on(
    redis_server: RedisServer,
) -> None:
    async with replica(redis_server) as (_, live_a, a), replica(redis_server) as (_, live_b, b):
        ghost, live = connection("site"), connection("site")
        live_a.attach(ghost)
        await a.claim(ghost)
        live_b.attach(live)
        await b.claim(live)
        # The hint of b's claim never reached a: its connection ends on its own, later.
        assert not ghost.cancel_scope.cancel_called
        assert await a.moved_on(ghost)  # so a does not mark the agent disconnected
        assert not await b.moved_on(live)
        unclaimed = connection("site")  # its claim never came back: it never was the live one
        assert not await a.moved_on(unclaimed)


async def test_after_a_resync_the_connections_overtaken_meanwhile_are_closed(
    redis_server: RedisServer,
) -> None:
    """No hint handed over at all (all were missed): ``check_all`` asks the store."""
    async with replica(redis_server) as (_, live_a, a), replica(redis_server) as (_, live_b, b):
        moved, stays, unclaimed = connection("moved"), connection("stays"), connection("new")
        for c in (moved, stays, unclaimed):
            live_a.attach(c)
        await a.claim(moved)
        await a.claim(stays)
        elsewhere = connection("moved")
        live_b.attach(elsewhere)
        await b.claim(elsewhere)
        await a.check_all()
        assert closed(moved) and moved.session == 1
        assert not stays.cancel_scope.cancel_called
        assert not unclaimed.cancel_scope.cancel_called  # its claim is on its way
        await b.check_all()
        assert not closed(elsewhere)


async def test_live_sessions_are_read_in_order_many_at_once(redis_server: RedisServer) -> None:
    async with replica(redis_server) as (store, _, _):
        agents = [f"agent-{n}" for n in range(2500)]
        for agent in agents[::500]:
            await store.claim_session(agent)
        await store.claim_session("agent-500")
        found = await store.live_sessions(agents)
        assert len(found) == len(agents)
        assert {n: seq for n, seq in enumerate(found) if seq} == {
            0: 1,
            500: 2,
            1000: 1,
            1500: 1,
            2000: 1,
        }
        assert await store.live_sessions([]) == []


async def test_a_session_number_that_is_not_one_leaves_the_connections_open(
    redis_server: RedisServer, logs: LogWatch
) -> None:
    async with (
        replica(redis_server) as (store, live, sessions),
        coredis.Redis.from_url(redis_server.url, decode_responses=True) as raw,
    ):
        mine = connection("site")
        live.attach(mine)
        await sessions.claim(mine)
        await raw.set("transporter:session:site", "x" * 100)
        with pytest.raises(StoreError, match="not a number"):
            await store.live_sessions(["site"])
        await sessions.check_all()
        assert not mine.cancel_scope.cancel_called
        (line,) = logs.matching("live sessions not checked")
        assert len(line) < 200
        assert not await sessions.moved_on(mine)
