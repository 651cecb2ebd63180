"""The Redis store's change feed on a real redis-server: each hint reaches the other store
objects and never its own origin; a restarted server means a resync; garbage is ignored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import coredis
import pytest
import trio

from tests.bed import records as r
from tests.bed.logwatch import LogWatch
from tests.bed.redis import RedisServer
from transporter.config.store_spec import StoreSpec
from transporter.protocol.model import AuditEntry, EventState
from transporter.store import Store, open_store

pytestmark = pytest.mark.redis

type Hint = tuple[object, ...]

WAIT = 10.0
"""Seconds a hint may take to arrive here (it takes about a millisecond)."""


class Heard:
    """A :class:`~transporter.store.base.ChangeSink` that keeps what it is told, in order."""

    def __init__(self) -> None:
        self._send, self._receive = trio.open_memory_channel[Hint](10_000)

    def queued(self, agent_id: str) -> None:
        self._send.send_nowait(("queued", agent_id))

    def progressed(self, event_id: str, agent_id: str, *, terminal: bool) -> None:
        self._send.send_nowait(("progressed", event_id, agent_id, terminal))

    def claimed(self, agent_id: str, seq: int) -> None:
        self._send.send_nowait(("claimed", agent_id, seq))

    def resync(self) -> None:
        self._send.send_nowait(("resync",))

    async def next(self) -> Hint:
        with trio.fail_after(WAIT):
            return await self._receive.receive()

    def pending(self) -> list[Hint]:
        """What was told and not taken yet."""
        out: list[Hint] = []
        while True:
            try:
                out.append(self._receive.receive_nowait())
            except trio.WouldBlock:
                return out


@asynccontextmanager
async def following(server: RedisServer) -> AsyncIterator[tuple[Store, Heard]]:
    """A store on ``server`` whose feed is followed (its first resync taken)."""
    heard = Heard()
    async with open_store(StoreSpec.parse(server.url)) as store, trio.open_nursery() as nursery:
        await nursery.start(store.follow_changes, heard)
        assert await heard.next() == ("resync",)
        yield store, heard
        nursery.cancel_scope.cancel()


async def test_each_write_is_heard_by_the_other_store_and_not_by_its_own(
    redis_server: RedisServer,
) -> None:
    async with following(redis_server) as (a, heard_a), following(redis_server) as (b, heard_b):
        event = r.event("ev-1", "agent-a")
        await b.submit(event, r.accepted_audit(event))
        assert await heard_a.next() == ("queued", "agent-a")
        await b.update_event("ev-1", r.update(EventState.ASSIGNED, r.T0 + 1))
        assert await heard_a.next() == ("progressed", "ev-1", "agent-a", False)
        await b.update_event("ev-1", r.update(EventState.EXPIRED, r.T0 + 2, message="ttl"))
        assert await heard_a.next() == ("progressed", "ev-1", "agent-a", True)
        # A write that changes nothing (the event ended already) tells nothing.
        await b.update_event("ev-1", r.update(EventState.ASSIGNED, r.T0 + 3))

        await a.submit(r.event("ev-2", "agent-b"), r.accepted_audit(r.event("ev-2", "agent-b")))
        assert await heard_b.next() == ("queued", "agent-b")
        assert heard_a.pending() == [] and heard_b.pending() == []


async def test_a_batch_is_one_message_and_every_hint_of_it_arrives(
    redis_server: RedisServer,
) -> None:
    agents = [f"agent-{n}" for n in range(1500)]
    async with (
        following(redis_server) as (_, heard),
        open_store(StoreSpec.parse(redis_server.url)) as writer,
        coredis.Redis.from_url(redis_server.url, decode_responses=True) as raw,
        raw.pubsub(channels=["transporter:notify"]) as watcher,
    ):
        assert (await watcher.get_message())["type"] == "subscribe"  # type: ignore[index]
        events = [r.event(f"ev-{n}", agent) for n, agent in enumerate(agents)]
        await r.submitted(writer, events)
        assert [await heard.next() for _ in agents] == [("queued", a) for a in agents]
        updates = [(e.id, r.update(EventState.ASSIGNED, r.T0 + 1), None) for e in events[:3]]
        await writer.update_many(updates)
        assert [await heard.next() for _ in updates] == [
            ("progressed", e.id, e.target_agent, False) for e in events[:3]
        ]
        # 1,500 events in two messages (at most 1,000 hints each), three updates in one.
        sizes: list[int] = []
        with trio.move_on_after(1.0):
            while len(sizes) < 3:
                message = await watcher.get_message()
                assert message is not None
                sizes.append(str(message["data"]).count("\n"))
        assert sizes == [1000, 500, 3]
        assert heard.pending() == []


async def test_a_batchs_progress_is_told_only_for_what_it_wrote(
    redis_server: RedisServer,
) -> None:
    """A compare-and-set of a batch refused (here: another replica appended to the audit chain,
    so every entry sealed after the head this one knew is refused) is no write: its hint comes
    from the write done again alone, once, never ahead of it from the batch."""
    async with (
        following(redis_server) as (_, heard),
        open_store(StoreSpec.parse(redis_server.url)) as writer,
        open_store(StoreSpec.parse(redis_server.url)) as other,
    ):
        events = [r.event("ev-1"), r.event("ev-2")]
        await r.submitted(writer, events)
        assert await heard.next() == ("queued", "agent-a")  # one hint for the two
        moving = r.event("ev-3", "agent-b")
        await other.submit(moving, r.accepted_audit(moving))  # the head moves past writer's
        assert await heard.next() == ("queued", "agent-b")
        assert heard.pending() == []
        ended = r.update(EventState.EXPIRED, r.T0 + 1, message="ttl")
        done = [
            (e.id, ended, AuditEntry(at=r.T0 + 1, action="event.expired", event_id=e.id))
            for e in events
        ]
        assert all(await writer.update_many(done))
        told = [await heard.next() for _ in events]
        assert told == [("progressed", e.id, "agent-a", True) for e in events]
        await writer.claim_session("agent-z")  # a hint after all the batch may have told
        assert await heard.next() == ("claimed", "agent-z", 1)
        assert heard.pending() == []


async def test_claims_are_numbered_in_turn_across_stores_and_told_to_the_others(
    redis_server: RedisServer,
) -> None:
    async with following(redis_server) as (a, heard_a), following(redis_server) as (b, heard_b):
        assert await a.claim_session("agent-a") == 1
        assert await heard_b.next() == ("claimed", "agent-a", 1)
        assert await b.claim_session("agent-a") == 2
        assert await heard_a.next() == ("claimed", "agent-a", 2)
        assert await b.claim_session("agent-b") == 1
        assert await heard_a.next() == ("claimed", "agent-b", 1)
        async with trio.open_nursery() as nursery:  # claims at once: each its own number
            for _ in range(20):
                nursery.start_soon(a.claim_session, "agent-c")
        assert await b.claim_session("agent-c") == 21
        assert heard_a.pending() == []


async def test_a_restarted_server_means_a_resync_and_hints_flow_again(
    redis_server: RedisServer, logs: LogWatch
) -> None:
    async with following(redis_server) as (_, heard):
        redis_server.kill()
        # The outage is said while it lasts (coredis does not retry within: the feed does).
        await logs.wait_for("not hearing the other replicas", "ConnectionError")
        redis_server.restart()
        assert await heard.next() == ("resync",)
        await logs.wait_for("hearing the other replicas again (resync)")
        assert len(logs.matching("not hearing the other replicas")) == 1
        async with open_store(StoreSpec.parse(redis_server.url)) as writer:
            await writer.submit(r.event(), r.accepted_audit(r.event()))
        assert await heard.next() == ("queued", "agent-a")


async def test_a_cut_subscription_means_a_resync_and_hints_flow_again(
    redis_server: RedisServer,
) -> None:
    async with (
        following(redis_server) as (_, heard),
        coredis.Redis.from_url(redis_server.url, decode_responses=True) as raw,
    ):
        assert await raw.client_kill(type_=coredis.PureToken.PUBSUB) == 1
        assert await heard.next() == ("resync",)
        async with open_store(StoreSpec.parse(redis_server.url)) as writer:
            await writer.claim_session("agent-a")
        assert await heard.next() == ("claimed", "agent-a", 1)


async def test_a_user_that_may_not_use_the_channel_is_told_so(
    redis_server: RedisServer, logs: LogWatch
) -> None:
    """Redis 7 gives a new ACL user no channel: coredis shows the refused subscription as
    often as a timeout as a refusal; the feed says which grant is missing, and hears once it
    is granted."""
    heard = Heard()
    async with coredis.Redis.from_url(redis_server.url, decode_responses=True) as raw:
        await raw.acl_setuser("cp", "on", ">pw", "~transporter:*", "resetchannels", "+@all")
        spec = StoreSpec.parse(redis_server.url_as("cp", "pw"))
        async with open_store(spec) as store, trio.open_nursery() as nursery:
            await nursery.start(store.follow_changes, heard)
            await logs.wait_for(
                "not hearing the other replicas (the Redis user may not use channel"
                " transporter:notify (grant &transporter:notify))"
            )
            await raw.acl_setuser("cp", "&transporter:notify")
            assert await heard.next() == ("resync",)
            await logs.wait_for("hearing the other replicas again (resync)")
            nursery.cancel_scope.cancel()


async def test_garbage_on_the_channel_is_logged_and_ignored(
    redis_server: RedisServer, logs: LogWatch
) -> None:
    junk = [
        "0123456789abcdef",  # an origin alone: a probe of the channel, not logged
        "no origin",
        "0123456789abcdef\nqueued Bad_Agent",
        "0123456789abcdef\nprogressed ev-1 agent-a 2\nqueued agent-z\nclaimed agent-a -1",
        "0123456789abcdef\n" + "x" * (2 * 1024 * 1024),
    ]
    async with (
        following(redis_server) as (_, heard),
        coredis.Redis.from_url(redis_server.url, decode_responses=True) as raw,
    ):
        for message in junk:
            await raw.publish("transporter:notify", message)
        # Of it all, the one good line is told.
        assert await heard.next() == ("queued", "agent-z")
        await logs.wait_for("ignored on the replicas' channel", "a message of 2097169")
        lines = logs.matching("ignored on the replicas' channel")
        assert len(lines) == 5, lines
        assert all(len(line) < 300 for line in lines)
