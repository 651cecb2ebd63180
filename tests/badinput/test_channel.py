"""Bad input on the agent channel, from raw WebSocket clients against a real control plane.

Each refusal is an ``error`` message (``type``, ``code``, ``message``) and a log line; the
connection is kept where the protocol says so (proved by the same connection still getting
answers: an event delivered, a report acknowledged), and the server keeps serving (proved by
another agent registering afterwards).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from trio_websocket import ConnectionClosed

from tests.bed.clients import CHANNEL_LIMIT, RawAgent, raw_agent
from tests.bed.harness import ControlPlane
from tests.bed.logwatch import LogWatch
from tests.bed.manifests import configmap, event_body
from transporter.protocol.messages import PROTOCOL_VERSION


async def still_served(cp: ControlPlane, agent: RawAgent, agent_id: str) -> None:
    """The connection works end to end: an event for ``agent_id`` arrives on it, and its
    reports are acknowledged."""
    submitted = await cp.client.submit(event_body(agent_id, configmap("alive")))
    event = await agent.next_delivery()
    assert event["id"] == submitted.event_id
    await agent.report(event["id"], 1, "in_progress", phase="applying")
    assert await agent.receive() == {"type": "status_ack", "event_id": event["id"], "seq": 1}
    record = await cp.client.event(event["id"])
    assert record.state.value == "in_progress"


async def another_agent_registers(cp: ControlPlane, agent_id: str = "newcomer") -> None:
    async with raw_agent(cp.agent_url) as agent:
        await agent.register(agent_id)
        await still_served(cp, agent, agent_id)


DEEP = '{"type": "heartbeat", "at": ' + "[" * 30_000 + "]" * 30_000 + "}"


@pytest.mark.parametrize(
    ("message", "code"),
    [
        pytest.param("{nope", "malformed", id="not-json"),
        pytest.param("[1, 2]", "malformed", id="not-an-object"),
        pytest.param(b"\xff\xfe{", "malformed", id="bytes-not-utf8"),
        pytest.param('{"type": "heartbeat", "at": NaN}', "malformed", id="nan"),
        pytest.param(DEEP, "malformed", id="nested-30000-deep"),
        pytest.param(
            '{"type": "received", "event_id": "\\ud800"}', "malformed", id="lone-surrogate"
        ),
        pytest.param('{"type": "launch_missiles"}', "unknown_type", id="unknown-type"),
        pytest.param('{"at": 1}', "unknown_type", id="no-type"),
        pytest.param('{"type": 7}', "unknown_type", id="type-not-a-string"),
        pytest.param('{"type": "heartbeat"}', "invalid", id="missing-field"),
        pytest.param('{"type": "heartbeat", "at": 1, "x": 1}', "invalid", id="extra-field"),
        pytest.param(
            '{"type": "status", "event_id": "e", "seq": 1, "at": 1, "state": "dancing"}',
            "invalid",
            id="bad-enum",
        ),
        pytest.param('{"type": "welcome", "agent_id": "a", "heartbeat_interval": 1}', "unexpected"),
        pytest.param('{"type": "error", "code": "x", "message": "y"}', "unexpected"),
        pytest.param('{"type": "status_ack", "event_id": "e", "seq": 1}', "unexpected"),
        pytest.param('{"type": "register", "agent": {"id": "someone-else"}}', "already_registered"),
    ],
)
async def test_a_bad_message_is_refused_and_the_connection_carries_on(
    cp: ControlPlane, logs: LogWatch, message: str | bytes, code: str
) -> None:
    async with raw_agent(cp.agent_url) as agent:
        await agent.register("agent-a")
        await agent.send(message)
        reason = await agent.expect_error(code)
        assert logs.matching("WARNING", "agent channel", code, reason)
        await still_served(cp, agent, "agent-a")
    await another_agent_registers(cp)
    assert not logs.matching("connection handler failed")


async def test_messages_before_registration_are_refused_then_it_may_register(
    cp: ControlPlane, logs: LogWatch
) -> None:
    async with raw_agent(cp.agent_url, identity="late-agent") as agent:
        bad: list[tuple[str | dict[str, Any], str]] = [
            ({"type": "heartbeat", "at": 1.0}, "not_registered"),
            ({"type": "received", "event_id": "e"}, "not_registered"),
            (
                {"type": "status", "event_id": "e", "seq": 1, "at": 1, "state": "completed"},
                "not_registered",
            ),
            ("{nope", "malformed"),
            ({"type": "teleport"}, "unknown_type"),
        ]
        for message, code in bad:
            await agent.send(message)
            await agent.expect_error(code)
        assert len(logs.matching("WARNING", "not_registered", "register before anything else")) == 3
        await agent.register("late-agent")
        await still_served(cp, agent, "late-agent")
    assert await cp.client.agents()  # only the registered one is on record
    assert [a.info.id for a in await cp.client.agents()] == ["late-agent"]


@pytest.mark.parametrize(
    ("register", "code"),
    [
        ({"type": "register", "agent": {"id": "Not An Id"}}, "invalid"),
        ({"type": "register", "agent": {"id": "agent-1\n"}}, "invalid"),
        ({"type": "register", "agent": {"id": "agent-1"}, "protocol": 0}, "protocol"),
    ],
)
async def test_a_registration_that_cannot_be_accepted_ends_that_connection_only(
    cp: ControlPlane, logs: LogWatch, register: dict[str, object], code: str
) -> None:
    async with raw_agent(cp.agent_url) as agent:
        await agent.send(register)
        reason = await agent.expect_error(code)
        with pytest.raises(ConnectionClosed):
            await agent.receive()
    assert logs.matching("WARNING", code, reason)
    assert await cp.client.agents() == []
    await another_agent_registers(cp)


async def test_reports_on_another_agents_event_are_refused(
    cp: ControlPlane, logs: LogWatch
) -> None:
    async with raw_agent(cp.agent_url) as owner, raw_agent(cp.agent_url) as intruder:
        await owner.register("owner")
        await intruder.register("intruder")
        submitted = await cp.client.submit(event_body("owner", configmap("mine")))
        event = await owner.next_delivery()
        assert event["id"] == submitted.event_id

        await intruder.report(event["id"], 1, "completed", phase="completed", resources=[])
        await intruder.expect_error("not_yours")
        await intruder.send({"type": "received", "event_id": event["id"]})
        await intruder.expect_error("not_yours")
        await intruder.report("no-such-event", 1, "failed")
        await intruder.expect_error("not_yours")
        assert len(logs.matching("WARNING", "agent intruder reported on event", "not its own")) == 3

        record = await cp.client.event(event["id"])
        assert record.state.value == "assigned"  # none of it was stored
        assert [entry.state.value for entry in record.timeline] == ["queued", "assigned"]

        # Both connections carry on: the owner's report is taken, the intruder gets its own.
        await owner.report(event["id"], 1, "completed", phase="completed", resources=[])
        assert (await owner.receive())["type"] == "status_ack"
        assert (await cp.client.event(event["id"])).state.value == "completed"
        await still_served(cp, intruder, "intruder")


@pytest.mark.parametrize(
    ("asked", "spoken"), [(None, 1), (1, 1), (2, 2), (3, 3), (99, PROTOCOL_VERSION)]
)
async def test_the_welcome_names_the_protocol_both_speak(
    cp: ControlPlane, asked: int | None, spoken: int
) -> None:
    async with raw_agent(cp.agent_url) as agent:
        welcome = await agent.register("agent-a", protocol=asked)
        assert welcome["protocol"] == spoken


@pytest.mark.parametrize("protocol", [1, 2])
async def test_events_queued_for_an_agent_arrive_in_one_message_on_protocol_2(
    cp: ControlPlane, protocol: int
) -> None:
    ids = [
        (await cp.client.submit(event_body("agent-a", configmap(f"c{n}")))).event_id
        for n in range(3)
    ]  # queued before the agent connects: its delivery task reads them at once
    async with raw_agent(cp.agent_url) as agent:
        await agent.register("agent-a", protocol=protocol)
        if protocol == 1:
            messages = [await agent.receive() for _ in ids]
            assert [m["type"] for m in messages] == ["deliver"] * 3
            assert [m["event"]["id"] for m in messages] == ids
        else:
            message = await agent.receive()
            assert message["type"] == "deliveries"
            assert [event["id"] for event in message["events"]] == ids


async def test_a_batch_of_reports_is_read_in_order_and_each_report_acknowledged(
    cp: ControlPlane,
) -> None:
    async with raw_agent(cp.agent_url) as agent:
        await agent.register("agent-a", protocol=2)
        ids = [
            (await cp.client.submit(event_body("agent-a", configmap(f"c{n}")))).event_id
            for n in range(3)
        ]
        assert sorted([(await agent.next_delivery())["id"] for _ in ids]) == sorted(ids)
        done = {"state": "completed", "phase": "completed", "resources": []}
        now = time.time()
        received = [{"event_id": i, "at": now - 2.5} for i in ids]
        statuses = [{"event_id": i, "seq": 1, "at": now - 2.0, **done} for i in ids]
        await agent.send({"type": "reports", "received": received, "statuses": statuses})
        acknowledged: set[tuple[str, int]] = set()
        while len(acknowledged) < len(ids):  # in one ``acks`` as a rule; that is not promised
            answer = await agent.receive()
            acks = answer["acks"] if answer["type"] == "acks" else [answer]
            assert all(ack.get("type", "status_ack") == "status_ack" for ack in acks), answer
            acknowledged |= {(ack["event_id"], ack["seq"]) for ack in acks}
        assert acknowledged == {(i, 1) for i in ids}
        for event_id in ids:
            record = await cp.client.event(event_id)
            assert record.state.value == "completed"
            phases = [
                (e.state.value, e.phase and e.phase.value, e.at) for e in record.timeline
            ]  # at the agent's times, as it said them
            assert phases[-2:] == [
                ("in_progress", "received", now - 2.5),
                ("completed", "completed", now - 2.0),
            ]


async def test_a_message_at_the_limit_is_read(cp: ControlPlane) -> None:
    base = '{"type": "unknown", "pad": ""}'
    message = base.replace('""', '"' + "x" * (CHANNEL_LIMIT - len(base)) + '"')
    assert len(message) == CHANNEL_LIMIT
    async with raw_agent(cp.agent_url) as agent:
        await agent.register("agent-a")
        await agent.send(message)
        await agent.expect_error("unknown_type")  # read whole, and answered
        await still_served(cp, agent, "agent-a")


@pytest.mark.parametrize("registered", [False, True], ids=["before-register", "registered"])
async def test_an_oversized_message_closes_that_connection_with_1009(
    cp: ControlPlane, logs: LogWatch, registered: bool
) -> None:
    async with raw_agent(cp.agent_url) as agent:
        if registered:
            await agent.register("big-talker")
        await agent.send(json.dumps({"type": "heartbeat", "at": 1, "pad": "x" * CHANNEL_LIMIT}))
        with pytest.raises(ConnectionClosed) as closed:
            await agent.receive()
    assert closed.value.reason is not None
    assert closed.value.reason.code == 1009
    assert str(CHANNEL_LIMIT) in (closed.value.reason.reason or "")
    line = await logs.wait_for("WARNING", "agent channel", f"over {CHANNEL_LIMIT} bytes", "1009")
    assert "connection handler failed" not in "\n".join(logs.lines), line
    if registered:
        await logs.wait_for("agent big-talker disconnected")
        assert (await cp.client.agent("big-talker")).status.value == "disconnected"
        # The same agent comes back on a new connection, and is served.
        async with raw_agent(cp.agent_url) as again:
            await again.register("big-talker")
            await still_served(cp, again, "big-talker")
    await another_agent_registers(cp)


@pytest.mark.parametrize("at", [1e18, -1e18, 0.0])
async def test_a_report_is_stored_within_its_bounds(cp: ControlPlane, at: float) -> None:
    """Times from the far future or past, a message of 50,000 characters and results with
    names of any length: the report is kept, within bounds (nothing accepted is lost)."""
    async with raw_agent(cp.agent_url) as agent:
        await agent.register("agent-a", protocol=2)
        event_id = (await cp.client.submit(event_body("agent-a", configmap("c")))).event_id
        await agent.next_delivery()
        result = {
            "api_version": "v1",
            "kind": "ConfigMap",
            "name": "n" * 5000,
            "namespace": "default",
            "status": "failed",
            "message": "m" * 5000,
        }
        before = time.time()
        await agent.report(
            event_id, 1, "failed", at=at, phase="failed", message="x" * 50_000, resources=[result]
        )
        assert (await agent.receive())["type"] == "status_ack"
        record = await cp.client.event(event_id)
        assert record.state.value == "failed"
        last = record.timeline[-1]
        assert before - 31 * 24 * 3600 <= last.at <= time.time()
        assert len(record.message) <= 4096 and record.message.endswith("characters cut)")
        [stored] = record.resources
        assert len(stored.name) <= 253 and len(stored.message) <= 2048
