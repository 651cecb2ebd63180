"""The delivery protocol seen from a hand-driven agent: deliveries not acknowledged in time are
sent again, acknowledged ones are not, and a connection that goes silent is closed as dead."""

from __future__ import annotations

from pathlib import Path

import attrs
import trio
from trio_websocket import ConnectionClosed

from tests.bed.clients import raw_agent
from tests.bed.harness import FAST_CHANNEL, ControlPlane
from tests.bed.manifests import configmap, event_body
from transporter.protocol.model import AgentStatus

ACK_TIMEOUT = 0.5


async def test_a_delivery_not_acknowledged_is_sent_again_and_an_acknowledged_one_is_not(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    # Heartbeats are not sent by this raw agent: keep the connection from being closed as dead.
    channel = attrs.evolve(FAST_CHANNEL, ack_timeout=ACK_TIMEOUT, dead_heartbeats=1000)
    cp = ControlPlane(nursery, tmp_path / "cp", channel=channel)
    await cp.start()
    async with raw_agent(cp.agent_url) as agent:
        await agent.register("forgetful")
        first = await cp.client.submit(event_body("forgetful", configmap("first")))
        assert (await agent.next_delivery())["id"] == first.event_id
        sent = trio.current_time()
        # Not acknowledged: the same event comes again, after the timeout.
        assert (await agent.next_delivery())["id"] == first.event_id
        assert trio.current_time() - sent >= ACK_TIMEOUT * 0.9
        await agent.send({"type": "received", "event_id": first.event_id})

        # A second event, never acknowledged: it is sent, then sent again after the timeout.
        # Had the first one's acknowledgement been ignored, the first (due earlier) would come
        # in between.
        second = await cp.client.submit(event_body("forgetful", configmap("second")))
        assert (await agent.next_delivery())["id"] == second.event_id
        assert (await agent.next_delivery())["id"] == second.event_id

        # A report acknowledges too; a finished event is never sent again.
        await agent.report(second.event_id, 1, "completed", phase="completed")
        assert (await agent.receive())["type"] == "status_ack"
        await agent.report(first.event_id, 1, "completed", phase="completed")
        assert (await agent.receive())["type"] == "status_ack"
        third = await cp.client.submit(event_body("forgetful", configmap("third")))
        assert (await agent.next_delivery())["id"] == third.event_id
        assert (await agent.next_delivery())["id"] == third.event_id  # not first or second

    audit = await cp.client.audit(limit=100)
    again = [e for e in audit if e.action == "event.delivered" and "again" in e.detail]
    assert {e.event_id for e in again} >= {first.event_id, second.event_id, third.event_id}


async def test_a_silent_agent_has_its_connection_closed_as_dead(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    channel = attrs.evolve(FAST_CHANNEL, dead_heartbeats=4)  # dead after 2 s
    cp = ControlPlane(nursery, tmp_path / "cp", channel=channel)
    await cp.start()
    dead_after = channel.dead_after
    async with raw_agent(cp.agent_url) as agent:
        welcome = await agent.register("mute")
        assert welcome["dead_after"] == dead_after
        registered = trio.current_time()
        # It sends nothing more: the control plane closes the connection.
        with trio.fail_after(dead_after * 5):
            try:
                while True:
                    await agent.ws.get_message()
            except ConnectionClosed:
                pass
        closed_after = trio.current_time() - registered
    assert dead_after * 0.9 <= closed_after <= dead_after + 3
    record = await cp.client.agent("mute")
    assert record.status is AgentStatus.DISCONNECTED


async def test_an_agent_that_keeps_talking_stays_connected(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    channel = attrs.evolve(FAST_CHANNEL, dead_heartbeats=4)  # dead after 2 s
    cp = ControlPlane(nursery, tmp_path / "cp", channel=channel)
    await cp.start()
    dead_after = channel.dead_after
    async with raw_agent(cp.agent_url) as agent:
        await agent.register("chatty")
        until = trio.current_time() + dead_after * 2
        while trio.current_time() < until:
            await agent.send({"type": "heartbeat", "at": 1.0})
            await trio.sleep(FAST_CHANNEL.heartbeat_interval)  # the agent's own pace
        record = await cp.client.agent("chatty")
        assert record.status is AgentStatus.CONNECTED
        # The connection still works: an event arrives on it.
        submitted = await cp.client.submit(event_body("chatty", configmap("still")))
        assert (await agent.next_delivery())["id"] == submitted.event_id
