"""TLS session resumption on the agent channel: an agent that dials the same control plane
again offers the ticket of its last connection and is resumed (no certificate work), still
known by its certificate; after a restart the ticket's key is new, and the agent shakes hands
in full as if it had offered none (agent/dial.py, cp/tls.py). Real sockets, the real cp."""

from __future__ import annotations

import ssl

from tests.bed.harness import ControlPlane
from transporter.agent.dial import Channel, connect
from transporter.protocol import codec
from transporter.protocol.messages import PROTOCOL_VERSION, Register, Welcome
from transporter.protocol.model import AgentInfo


async def registered(url: str, context: ssl.SSLContext, agent_id: str) -> bool:
    """Dial, register as ``agent_id`` and be welcomed: whether TLS resumed a session."""
    async with connect(url, ssl_context=context, max_message_size=1 << 20, connect_timeout=10) as c:
        await c.send(codec.encode(Register(AgentInfo(agent_id), PROTOCOL_VERSION)))
        welcome = codec.decode(await _text(c))
        assert isinstance(welcome, Welcome) and welcome.agent_id == agent_id, welcome
        return c.resumed


async def _text(channel: Channel) -> str:
    message = await channel.receive()
    assert isinstance(message, str)
    return message


async def test_an_agent_dialling_again_resumes_until_the_control_plane_restarts(
    cp: ControlPlane,
) -> None:
    context = cp.bundle("site-1").ssl_context()
    assert not await registered(cp.agent_url, context, "site-1")  # nothing to resume yet
    assert await registered(cp.agent_url, context, "site-1")
    assert await registered(cp.agent_url, context, "site-1")  # each time a new ticket

    other = cp.bundle("site-2").ssl_context()  # a context of its own: its own sessions
    assert not await registered(cp.agent_url, other, "site-2")

    await cp.stop()
    await cp.start()
    assert not await registered(cp.agent_url, context, "site-1")  # the old ticket is refused
    assert await registered(cp.agent_url, context, "site-1")
