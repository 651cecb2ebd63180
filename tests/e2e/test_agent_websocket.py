"""The agent's own WebSocket client (agent/upgrade.py, agent/websocket.py) against the real
control plane (its own frames, cp/framing.py, on wsproto's handshake), over mutual TLS and
plain ws://: the upgrade, messages both ways, a message sent in fragments, pings, heartbeats
and the close handshake either way. Small hostile servers: tests/agent/test_websocket.py."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trio

from tests.bed.harness import ControlPlane
from transporter.agent.dial import CLOSE_WAIT, Channel, ChannelClosed, connect
from transporter.protocol import codec, frames
from transporter.protocol.messages import PROTOCOL_VERSION, Register, Welcome
from transporter.protocol.model import AgentInfo

TIMEOUT = 10.0


def register(agent_id: str) -> bytes:
    return codec.encode(Register(AgentInfo(agent_id), PROTOCOL_VERSION)).encode()


async def welcomed(channel: Channel, agent_id: str) -> None:
    with trio.fail_after(TIMEOUT):
        message = await channel.receive()
    assert isinstance(message, str)
    welcome = codec.decode(message)
    assert isinstance(welcome, Welcome) and welcome.agent_id == agent_id, welcome


@pytest.fixture
async def plain(nursery: trio.Nursery, tmp_path: Path) -> ControlPlane:
    plane = ControlPlane(nursery, tmp_path / "plain", insecure=True)
    await plane.start()
    return plane


@pytest.mark.parametrize("secure", [True, False], ids=["wss", "ws"])
async def test_messages_both_ways_pings_heartbeats_and_a_clean_close(
    cp: ControlPlane, plain: ControlPlane, secure: bool
) -> None:
    plane = cp if secure else plain
    context: ssl.SSLContext | None = plane.bundle("ws-1").ssl_context() if secure else None
    started = trio.current_time()
    async with connect(
        plane.agent_url, ssl_context=context, max_message_size=1 << 20, connect_timeout=TIMEOUT
    ) as channel:
        await channel.send(register("ws-1").decode())
        await welcomed(channel, "ws-1")
        with trio.fail_after(TIMEOUT):
            for _ in range(3):
                await channel.ping()
                await channel.beat()
        closing = trio.current_time()
    # The control plane answered the close at once: the close did not wait its bound out.
    assert trio.current_time() - closing < CLOSE_WAIT / 2, trio.current_time() - started


async def test_a_message_sent_in_fragments_is_read_whole_by_the_control_plane(
    cp: ControlPlane,
) -> None:
    context = cp.bundle("ws-2").ssl_context()
    async with connect(
        cp.agent_url, ssl_context=context, max_message_size=1 << 20, connect_timeout=TIMEOUT
    ) as channel:
        data = register("ws-2")
        parts = [data[:5], data[5:20], data[20:]]
        await channel.stream.send_all(
            frames.frame(frames.TEXT, parts[0], mask=True, fin=False)
            + frames.frame(frames.PING, b"between", mask=True)
            + frames.frame(frames.CONTINUATION, parts[1], mask=True, fin=False)
            + frames.frame(frames.CONTINUATION, parts[2], mask=True)
        )
        await welcomed(channel, "ws-2")
        with trio.fail_after(TIMEOUT):
            await channel.ping()


async def test_the_control_plane_closing_is_answered_and_said(cp: ControlPlane) -> None:
    context = cp.bundle("ws-3").ssl_context()
    async with connect(
        cp.agent_url, ssl_context=context, max_message_size=1 << 20, connect_timeout=TIMEOUT
    ) as channel:
        await channel.send(register("ws-3").decode())
        await welcomed(channel, "ws-3")
        # An unmasked frame, as a server's: the control plane closes with 1002.
        await channel.stream.send_all(frames.frame(frames.TEXT, b"{}"))
        with trio.fail_after(TIMEOUT), pytest.raises(ChannelClosed) as closed:
            await channel.receive()
        said = "the control plane closed the connection (1002: a client's frame must be masked)"
        assert str(closed.value) == said
        with pytest.raises(ChannelClosed, match="1002"):
            await channel.send("{}")
