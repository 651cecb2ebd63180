"""What a control plane does with the other replicas' hints, on one real redis-server, with the
safety looks set to an hour (so only the hints can do it in time): a hint of an event's end
frees its slot in the agent's delivery window, and after a cut subscription the resync catches
up on what it missed (an event to deliver, a waiting ``GET /events/{id}?wait`` to answer)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import coredis
import pytest
import trio
from trio_websocket import ConnectionClosed

from tests.bed import records as r
from tests.bed.clients import RawAgent, raw_agent
from tests.bed.harness import FAST_CHANNEL, ControlPlane
from tests.bed.logwatch import LogWatch
from tests.bed.manifests import configmap, event_body, unique
from tests.bed.redis import RedisServer
from tests.e2e.test_replicas import AT_ONCE, HOUR, submit_elsewhere
from transporter.config.store_spec import StoreSpec
from transporter.cp.live import WINDOW
from transporter.protocol.model import AgentStatus, EventRecord, EventState
from transporter.store import open_store
from transporter.store.redis.feed import REOPEN_MOST

pytestmark = pytest.mark.redis

DEAF = "cp-deaf"
"""The Redis user of the replica whose subscription the test cuts (the others are another)."""
CHANNEL = "transporter:notify"


@asynccontextmanager
async def planes(tmp_path: Path, *specs: StoreSpec) -> AsyncIterator[list[ControlPlane]]:
    """A control plane on each of ``specs`` (one Redis), looking at the store once an hour,
    and patient with agents (the raw ones here send no heartbeats)."""
    channel = attrs.evolve(FAST_CHANNEL, replica_look=HOUR, dead_heartbeats=240)
    async with trio.open_nursery() as nursery:
        started = [
            ControlPlane(nursery, tmp_path / f"cp-{n}", store=spec, channel=channel)
            for n, spec in enumerate(specs)
        ]
        for plane in started:
            await plane.start()
        yield started
        nursery.cancel_scope.cancel()


async def delivered_ids(agent: RawAgent, count: int) -> set[str]:
    with trio.fail_after(AT_ONCE * 4):
        return {(await agent.next_delivery())["id"] for _ in range(count)}


async def test_an_event_ended_on_another_replica_frees_its_slot_here(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """The agent's window full (nothing acknowledged), one of its events ends through another
    replica's store: the next event is sent at once, not at the look an hour away (nor at the
    acknowledgement timeout, 30 s)."""
    spec = StoreSpec.parse(redis_server.url)
    async with (
        planes(tmp_path, spec) as (one,),
        open_store(spec) as elsewhere,
        raw_agent(one.agent_url, identity="site-w") as agent,
    ):
        await agent.register("site-w")
        now = time.time()
        filling = [r.event(f"fill-{n}", "site-w", created_at=now) for n in range(WINDOW)]
        await r.submitted(elsewhere, filling)
        assert await delivered_ids(agent, WINDOW) == {e.id for e in filling}
        extra = r.event("extra", "site-w", created_at=now)
        await elsewhere.submit(extra, r.accepted_audit(extra))  # no room: it waits
        ended = r.update(EventState.EXPIRED, now + 1, message="ttl")
        assert await elsewhere.update_event("fill-0", ended) is not None
        with trio.fail_after(AT_ONCE):
            assert (await agent.next_delivery())["id"] == "extra"


@attrs.frozen
class Deafened:
    """Two replicas, the first on a Redis user whose channel can be taken away."""

    one: ControlPlane
    two: ControlPlane
    raw: coredis.Redis[str]
    logs: LogWatch

    async def cut(self) -> None:
        """Cut replica one's subscription, and keep it from coming back."""
        await self.raw.acl_setuser(DEAF, "resetchannels")
        await self.raw.client_kill(type_=coredis.PureToken.PUBSUB, user=DEAF)
        await self.logs.wait_for("not hearing the other replicas", "ConnectionError")
        await self.logs.wait_for("not hearing the other replicas", f"grant &{CHANNEL}")

    async def restore(self) -> None:
        """Let replica one subscribe again (at its next try, within :data:`REOPEN_MOST`)."""
        await self.raw.acl_setuser(DEAF, f"&{CHANNEL}")


@asynccontextmanager
async def deafened(
    tmp_path: Path, redis_server: RedisServer, logs: LogWatch
) -> AsyncIterator[Deafened]:
    async with coredis.Redis.from_url(redis_server.url, decode_responses=True) as raw:
        await raw.acl_setuser(DEAF, "on", ">pw", "~transporter:*", f"&{CHANNEL}", "+@all")
        deaf = StoreSpec.parse(redis_server.url_as(DEAF, "pw"))
        async with planes(tmp_path, deaf, StoreSpec.parse(redis_server.url)) as (one, two):
            yield Deafened(one, two, raw, logs)


async def test_after_a_cut_subscription_the_resync_delivers_and_answers_what_was_missed(
    tmp_path: Path, redis_server: RedisServer, logs: LogWatch
) -> None:
    """Replica one's subscription is cut and kept from coming back (its user loses the
    channel) while an event for its agent is posted to replica two and an event it is
    waiting on changes there; once the channel is granted again, it subscribes again and the
    resync delivers the one and answers the other."""
    async with (
        deafened(tmp_path, redis_server, logs) as replicas,
        raw_agent(replicas.one.agent_url, identity="site-h") as here,
        raw_agent(replicas.two.agent_url, identity="site-t") as there,
    ):
        one, two = replicas.one, replicas.two
        await here.register("site-h")
        await there.register("site-t")
        followed = await two.client.event((await submit_elsewhere(two, there, "site-t"))["id"])
        answers: list[EventRecord] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait_for_change, one, followed, answers)
            await one.client.event(followed.event.id)  # the wait has been taken in
            await replicas.cut()
            seq = len(followed.timeline) + 1
            await there.report(followed.event.id, seq, "in_progress", phase="received")
            missed = await two.client.submit(event_body("site-h", configmap(unique("cm"))))
            await replicas.restore()
            with trio.fail_after(REOPEN_MOST + AT_ONCE):
                assert (await here.next_delivery())["id"] == missed.event_id
        (answer,) = answers
        assert answer.state is EventState.IN_PROGRESS
        await logs.wait_for("hearing the other replicas again (resync)")
        # Hints flow again: what is posted to replica two next is delivered at once.
        await submit_elsewhere(two, here, "site-h")


async def wait_for_change(plane: ControlPlane, record: EventRecord, out: list[EventRecord]) -> None:
    with trio.fail_after(REOPEN_MOST + AT_ONCE * 4):
        out.append(await plane.client.event(record.event.id, wait=60, since=len(record.timeline)))


async def test_a_connection_whose_session_moved_while_not_hearing_is_closed_at_the_resync(
    tmp_path: Path, redis_server: RedisServer, logs: LogWatch
) -> None:
    """The agent dials replica two while replica one hears nothing (the hint of the claim is
    missed): at the resync, replica one finds its connection overtaken and closes it, without
    marking the agent disconnected (else it would go on writing its status over the live
    connection's)."""
    async with (
        deafened(tmp_path, redis_server, logs) as replicas,
        raw_agent(replicas.one.agent_url, identity="site-m") as old,
        raw_agent(replicas.two.agent_url, identity="site-m") as new,
    ):
        await old.register("site-m")
        await replicas.cut()
        await new.register("site-m")
        await replicas.restore()
        with trio.fail_after(REOPEN_MOST + AT_ONCE), pytest.raises(ConnectionClosed):
            await old.ws.get_message()
        await logs.wait_for("agent site-m: its session 1 is now on another replica (session 2)")
        agent = await replicas.one.client.agent("site-m")
        assert agent.status is AgentStatus.CONNECTED
        await submit_elsewhere(replicas.one, new, "site-m")
