"""Who may use the agent channel: mutual TLS with the control plane's CA, the agent id from the
certificate, revocation at the handshake and of open connections. Real control planes (in the
test's loop), real TLS, real certificates; agents without Kubernetes behind them (their runner
succeeds at once), since only the channel is under test here."""

from __future__ import annotations

import datetime
import json
import ssl
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.bed.harness import FAST_BACKOFF, ControlPlane, InstantRunner
from tests.bed.logwatch import LogWatch
from tests.bed.pki import TestPki, shared
from transporter.agent.bundle import Bundle
from transporter.agent.dial import ChannelClosed, DialError, connect
from transporter.agent.session import Session, agent_info
from transporter.cp.admin.bundles import revocation_audit
from transporter.protocol.identity import Revocation
from transporter.protocol.model import AgentStatus
from transporter.store import open_store

TIMEOUT = 20.0
"""A bound on waiting for what must happen (the test fails rather than hangs)."""


def session(bundle: Bundle, url: str, *, agent_id: str | None = None) -> Session:
    info = agent_info(agent_id or bundle.agent_id, "test", {})
    return Session(
        info,
        url,
        InstantRunner(),
        backoff=FAST_BACKOFF,
        ssl_context=bundle.ssl_context(),
        signing_key=bundle.signing_key,
    )


async def register(url: str, context: ssl.SSLContext | None, agent_id: str) -> dict[str, Any]:
    """Dial, register as ``agent_id``, and give back the control plane's answer; what kept the
    connection from being set up is raised as itself (not in an exception group)."""
    try:
        async with connect(
            url, ssl_context=context, max_message_size=1 << 20, connect_timeout=TIMEOUT
        ) as channel:
            register = {"type": "register", "agent": {"id": agent_id}, "protocol": 1}
            await channel.send(json.dumps(register))
            with trio.fail_after(TIMEOUT):
                answer: dict[str, Any] = json.loads(await channel.receive())
                if answer["type"] == "error":  # then the control plane closes the connection
                    with pytest.raises(ChannelClosed):
                        await channel.receive()
            return answer
    except BaseExceptionGroup as group:
        raise leaf(group) from None


def leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


async def audit_actions(cp: ControlPlane) -> list[tuple[str, str, str]]:
    return [(e.action, e.agent_id, e.detail) for e in await cp.client.audit()]


async def revoke(cp: ControlPlane, kind: str, value: str) -> Revocation:
    """What ``transporter bundle revoke`` does, into this control plane's store."""
    revocation = Revocation(kind, value, time.time(), by="test")  # type: ignore[arg-type]
    async with open_store(cp.spec) as store:
        stored, created = await store.revoke_certificate(revocation, revocation_audit(revocation))
    assert created
    return stored


async def test_an_agent_registers_as_the_id_in_its_certificate(
    nursery: trio.Nursery, cp: ControlPlane
) -> None:
    bundle = cp.bundle("site-1")
    agent = session(bundle, cp.agent_url)
    nursery.start_soon(agent.run)
    with trio.fail_after(TIMEOUT):
        await agent.connected.wait()
    record = await cp.client.agent("site-1")
    assert record.status is AgentStatus.CONNECTED
    connected = [a for a in await audit_actions(cp) if a[0] == "agent.connected"]
    assert len(connected) == 1
    assert connected[0][1] == "site-1"
    assert f"certificate serial {bundle.serial}" in connected[0][2]


async def test_a_certificate_from_another_ca_is_refused(
    cp: ControlPlane, logs: LogWatch, tmp_path: Path
) -> None:
    stranger = TestPki.create(tmp_path / "other-ca").bundle_dir("site-1")
    context = ssl.create_default_context(cafile=str(cp.authority.ca_cert))  # it trusts the right CA
    context.load_cert_chain(str(stranger / "agent.crt"), str(stranger / "agent.key"))
    with pytest.raises(DialError, match="did not accept this agent's certificate"):
        await register(cp.agent_url, context, "site-1")
    await logs.wait_for("TLS handshake failed", "certificate verify failed")
    assert await cp.client.agents() == []


async def test_the_agent_refuses_a_control_plane_its_ca_did_not_certify(
    nursery: trio.Nursery, tmp_path: Path, logs: LogWatch
) -> None:
    """The agent trusts the CA in its bundle, not the system's nor any other."""
    elsewhere = ControlPlane(nursery, tmp_path / "cp", pki=TestPki.create(tmp_path / "other-ca"))
    await elsewhere.start()
    bundle = shared().bundle("site-1")
    with pytest.raises(DialError, match="certificate verify failed"):
        await register(elsewhere.agent_url, bundle.ssl_context(), "site-1")
    await logs.wait_for("TLS handshake failed")  # the control plane saw it end, too


async def test_an_expired_certificate_is_refused(cp: ControlPlane, logs: LogWatch) -> None:
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=3)
    expired = cp.authority.bundle("site-1", days=1, now=past)
    assert expired.not_after < time.time()
    with pytest.raises(DialError, match="did not accept"):
        await register(cp.agent_url, expired.ssl_context(), "site-1")
    await logs.wait_for("TLS handshake failed", "certificate has expired")
    assert await cp.client.agents() == []


async def test_a_connection_is_closed_when_its_certificate_expires(
    cp: ControlPlane, logs: LogWatch
) -> None:
    short = cp.authority.bundle("site-1", days=4 / 86400)  # valid for 4 more seconds
    agent = session(short, cp.agent_url)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(agent.run)
        with trio.fail_after(TIMEOUT):
            await agent.connected.wait()
        await logs.wait_for("agent site-1: its certificate expired; closing its connection")
        assert time.time() >= short.not_after
        nursery.cancel_scope.cancel()
    entries = [e for e in await cp.client.audit() if e.action == "agent.expired"]
    assert [e.agent_id for e in entries] == ["site-1"]


async def test_a_connection_without_a_certificate_is_refused(
    cp: ControlPlane, logs: LogWatch
) -> None:
    anonymous = ssl.create_default_context(cafile=str(cp.authority.ca_cert))
    with pytest.raises(DialError, match="did not accept"):
        await register(cp.agent_url, anonymous, "site-1")
    await logs.wait_for("TLS handshake failed", "peer did not return a certificate")
    plain = cp.agent_url.replace("wss://", "ws://")
    with pytest.raises(DialError, match="before the WebSocket upgrade"):
        await register(plain, None, "site-1")
    assert len(logs.matching("TLS handshake failed")) == 2
    assert await cp.client.agents() == []


async def test_registering_as_another_id_is_refused_and_audited(
    cp: ControlPlane, logs: LogWatch
) -> None:
    bundle = cp.bundle("site-1")
    answer = await register(cp.agent_url, bundle.ssl_context(), "site-2")
    assert answer["type"] == "error"
    assert answer["code"] == "identity"
    assert "for agent 'site-1'" in answer["message"]
    assert "may not register as 'site-2'" in answer["message"]
    assert logs.matching("WARNING", "identity", "site-2")
    refused = [a for a in await audit_actions(cp) if a[0] == "agent.refused"]
    assert len(refused) == 1
    assert refused[0][1] == "site-1"
    assert "site-2" in refused[0][2] and bundle.serial in refused[0][2]
    assert await cp.client.agents() == []
    # The certificate itself is fine: as its own id, the agent is welcome.
    assert (await register(cp.agent_url, bundle.ssl_context(), "site-1"))["type"] == "welcome"


async def test_the_agent_is_told_when_it_registers_as_another_id(
    nursery: trio.Nursery, cp: ControlPlane, logs: LogWatch
) -> None:
    agent = session(cp.bundle("site-1"), cp.agent_url, agent_id="site-9")
    nursery.start_soon(agent.run)
    line = await logs.wait_for("control plane", "identity", "reconnecting")
    assert "may not register as 'site-9'" in line
    assert not agent.connected.is_set()


@pytest.mark.parametrize("kind", ["serial", "fingerprint"])
async def test_a_revoked_certificate_is_refused_at_the_handshake(
    cp: ControlPlane, logs: LogWatch, kind: str
) -> None:
    bundle = cp.bundle("site-1")
    value = bundle.serial if kind == "serial" else bundle.fingerprint
    await revoke(cp, kind, value)
    await logs.wait_for(f"certificate {kind} {value} revoked")  # the control plane knows
    with pytest.raises(DialError, match=r"refused with HTTP 403: .*revoked"):
        await register(cp.agent_url, bundle.ssl_context(), "site-1")
    refused = [a for a in await audit_actions(cp) if a[0] == "agent.refused"]
    assert len(refused) == 1 and f"{kind} {value} is revoked" in refused[0][2]
    # Another certificate for the same agent is still good.
    again = cp.bundle("site-1")
    assert (await register(cp.agent_url, again.ssl_context(), "site-1"))["type"] == "welcome"


async def test_a_revocation_stored_before_the_start_holds_from_the_start(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    cp = ControlPlane(nursery, tmp_path / "cp")
    bundle = cp.bundle("site-1")
    async with open_store(cp.spec) as store:
        revocation = Revocation("serial", bundle.serial, time.time())
        await store.revoke_certificate(revocation, revocation_audit(revocation))
    await cp.start()
    with pytest.raises(DialError, match="refused with HTTP 403"):
        await register(cp.agent_url, bundle.ssl_context(), "site-1")


async def test_a_revocation_closes_the_open_connection_within_seconds(
    nursery: trio.Nursery, cp: ControlPlane, logs: LogWatch
) -> None:
    bundle = cp.bundle("site-1")
    agent = session(bundle, cp.agent_url)
    nursery.start_soon(agent.run)
    with trio.fail_after(TIMEOUT):
        await agent.connected.wait()
    revoked_at = trio.current_time()
    await revoke(cp, "serial", bundle.serial)
    await logs.wait_for("agent site-1: certificate serial", "revoked; connection closed")
    await logs.wait_for("agent site-1 disconnected")
    took = trio.current_time() - revoked_at
    assert took < cp.revocation_poll + 2.0
    assert (await cp.client.agent("site-1")).status is AgentStatus.DISCONNECTED
    actions = await audit_actions(cp)
    assert [a[0] for a in actions if a[0] in ("agent.revoked", "certificate.revoked")] == [
        "agent.revoked",
        "certificate.revoked",
    ]
    # It dials again, and is refused at the handshake from now on; the agent says why.
    await logs.wait_for("refused: certificate serial", "is revoked")
    line = await logs.wait_for("still unreachable", "refused with HTTP 403")
    assert f"serial {bundle.serial} is revoked" in line
    assert not agent.connected.is_set()


async def test_a_plain_channel_needs_the_flag_and_takes_any_id(
    nursery: trio.Nursery, tmp_path: Path, logs: LogWatch
) -> None:
    cp = ControlPlane(nursery, tmp_path / "cp", insecure=True)
    await cp.start()
    assert cp.agent_url.startswith("ws://")
    assert logs.matching("WARNING", "AGENT CHANNEL SECURITY IS OFF", "--insecure-plain-ws")
    assert (await register(cp.agent_url, None, "anyone"))["type"] == "welcome"
    # and the event it gets is signed all the same
    submitted = await cp.client.submit(
        {
            "target_agent": "anyone",
            "payload": {"manifests": ["apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"]},
        }
    )
    record = await cp.client.event(submitted.event_id)
    assert len(record.event.signature) == 88


async def test_the_control_plane_makes_its_ca_on_the_first_start_and_keeps_it(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """Without CA files given (the product's default), the data folder gets one."""
    data = tmp_path / "cp"
    cp = ControlPlane(nursery, data, pki=None)
    await cp.start()
    first = (data / "ca.crt").read_bytes()
    assert (data / "event-signing.key").exists()
    await cp.stop()
    await cp.start()
    assert (data / "ca.crt").read_bytes() == first
    bundle = cp.bundle("site-1")  # issued from the CA the control plane made
    assert (await register(cp.agent_url, bundle.ssl_context(), "site-1"))["type"] == "welcome"
