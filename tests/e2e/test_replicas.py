"""Three control planes on one real redis-server hand events over at once: an event posted to a
replica its agent is not connected to is delivered without waiting for a look at the store,
a waiting ``GET /events/{id}?wait`` on a third answers as soon as the agent reports, and an
agent connected to two replicas keeps one live session. The safety looks are set to an hour:
only the hints through Redis can do it in time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import pytest
import trio
from trio_websocket import ConnectionClosed

from tests.bed.clients import RawAgent, raw_agent
from tests.bed.harness import FAST_CHANNEL, ControlPlane
from tests.bed.manifests import configmap, event_body, unique
from tests.bed.redis import RedisServer
from transporter.config.store_spec import StoreSpec
from transporter.protocol.model import AgentStatus, EventRecord, EventState

pytestmark = pytest.mark.redis

HOUR = 3600.0
AT_ONCE = 5.0
"""Seconds within which what a hint wakes must happen: far below the hour of the safety looks
(and of any wait below), above what a loaded 2-core machine can take (milliseconds here)."""


@asynccontextmanager
async def replicas(
    tmp_path: Path, redis_server: RedisServer, count: int = 3
) -> AsyncIterator[list[ControlPlane]]:
    """``count`` control planes on ``redis_server``, looking at the store once an hour."""
    store = StoreSpec.parse(redis_server.url)
    channel = attrs.evolve(FAST_CHANNEL, replica_look=HOUR)
    async with trio.open_nursery() as nursery:
        planes = [
            ControlPlane(nursery, tmp_path / f"cp-{n}", store=store, channel=channel)
            for n in range(count)
        ]
        for plane in planes:
            await plane.start()
        yield planes
        nursery.cancel_scope.cancel()


async def submit_elsewhere(plane: ControlPlane, agent: RawAgent, agent_id: str) -> dict[str, str]:
    """An event for ``agent_id`` posted to ``plane``, and delivered to ``agent`` at once."""
    with trio.fail_after(AT_ONCE):
        submitted = await plane.client.submit(event_body(agent_id, configmap(unique("cm"))))
        event = await agent.next_delivery()
    assert event["id"] == submitted.event_id
    return event


async def test_an_event_posted_to_another_replica_is_delivered_and_followed_at_once(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    async with (
        replicas(tmp_path, redis_server) as (one, two, three),
        raw_agent(one.agent_url, identity="site-a") as site_a,
        raw_agent(two.agent_url, identity="site-b") as site_b,
    ):
        await site_a.register("site-a")
        await site_b.register("site-b")
        # Each agent's event posted to a replica it is not connected to, followed on the third.
        for agent, agent_id, post, follow in (
            (site_a, "site-a", two, three),
            (site_b, "site-b", three, one),
        ):
            event = await submit_elsewhere(post, agent, agent_id)
            record = await follow.client.event(event["id"])
            assert record.state is EventState.ASSIGNED
            for state, phase in (("in_progress", "received"), ("completed", "completed")):
                record = await reported_while_waiting(follow, agent, record, state, phase)
            assert record.state is EventState.COMPLETED


async def reported_while_waiting(
    follow: ControlPlane, agent: RawAgent, record: EventRecord, state: str, phase: str
) -> EventRecord:
    """The agent reports ``state`` to its replica while a ``GET ?wait`` waits on ``follow``:
    the answer comes at once with the report in it (the wait and the looks are far longer)."""
    answers: list[EventRecord] = []

    async def wait() -> None:
        since = len(record.timeline)
        answers.append(await follow.client.event(record.event.id, wait=60, since=since))

    with trio.fail_after(AT_ONCE):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait)
            # A plain GET after it on the same replica: the waiting one has been taken in.
            await follow.client.event(record.event.id)
            seq = len(record.timeline) + 1
            await agent.report(record.event.id, seq, state, phase=phase)
    (answer,) = answers
    assert answer.state.value == state and answer.phase is not None
    assert answer.phase.value == phase
    return answer


async def test_an_agent_connected_to_two_replicas_keeps_one_live_session(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    async with (
        replicas(tmp_path, redis_server) as (one, two, three),
        raw_agent(one.agent_url, identity="site-c") as old,
        raw_agent(two.agent_url, identity="site-c") as new,
    ):
        await old.register("site-c")
        in_flight = await submit_elsewhere(three, old, "site-c")  # sent, not acknowledged
        await new.register("site-c")
        with trio.fail_after(AT_ONCE), pytest.raises(ConnectionClosed):
            await old.ws.get_message()  # the older connection is closed, on its replica
        # What was in flight on it is sent on the live one (not taken back as "went away").
        with trio.fail_after(AT_ONCE):
            assert (await new.next_delivery())["id"] == in_flight["id"]
        record = await three.client.event(in_flight["id"])
        assert [entry.message for entry in record.timeline].count("agent went away") == 0
        # The agent is connected (on two): one did not mark it disconnected.
        assert (await three.client.agent("site-c")).status is not AgentStatus.DISCONNECTED
        audit = await three.client.audit()
        assert [e.action for e in audit if e.agent_id == "site-c"].count("agent.disconnected") == 0
        # An event posted where its older connection was reaches the live one.
        await submit_elsewhere(one, new, "site-c")


async def test_two_replicas_taking_one_agent_at_once_leave_it_one_live_session(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    async with (
        replicas(tmp_path, redis_server, 2) as (one, two),
        raw_agent(one.agent_url, identity="site-d") as first,
        raw_agent(two.agent_url, identity="site-d") as second,
    ):
        closed: list[RawAgent] = []

        async def register(agent: RawAgent) -> None:
            """Welcomed, or closed at once: the other's claim may come while its own is on
            its way."""
            try:
                await agent.register("site-d")
            except ConnectionClosed:
                closed.append(agent)

        async def closes(agent: RawAgent) -> None:
            with pytest.raises(ConnectionClosed):
                await agent.ws.get_message()
            closed.append(agent)
            nursery.cancel_scope.cancel()

        with trio.fail_after(AT_ONCE):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(register, first)
                nursery.start_soon(register, second)
            if not closed:  # both welcomed: one of them is closed now
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(closes, first)
                    nursery.start_soon(closes, second)
        (loser,) = closed
        survivor = second if loser is first else first
        # The survivor is the live one: events posted to either replica reach it.
        await submit_elsewhere(one, survivor, "site-d")
        await submit_elsewhere(two, survivor, "site-d")
