"""A control-plane restart between submission and the agent's arrival loses nothing."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from tests.bed.harness import Agent, ControlPlane, finish, statuses
from tests.bed.kube import Cluster
from tests.bed.manifests import configmap_yaml, event_body, unique
from tests.bed.redis import RedisServer
from transporter.config.store_spec import StoreSpec
from transporter.protocol.model import EventState, ResourceStatus


async def left(plane: ControlPlane) -> bool:
    """Whether the control plane wrote an agent's leaving (``agent.disconnected``)."""
    return "agent.disconnected" in {e.action for e in await plane.client.audit(limit=500)}


async def restart_then_deliver(plane: ControlPlane, agent: Agent) -> None:
    await plane.start()
    names = [unique("cm") for _ in range(3)]
    ids = [
        (await plane.client.submit(event_body(agent.agent_id, configmap_yaml(n, None)))).event_id
        for n in names
    ]
    audit_before = len(await plane.client.audit())
    await plane.stop()
    await plane.start()
    for event_id in ids:
        assert (await plane.client.event(event_id)).state is EventState.QUEUED
    await agent.start(plane.agent_url)
    for event_id, name in zip(ids, names, strict=True):
        record = await finish(plane, event_id)
        assert record.state is EventState.COMPLETED
        assert statuses(record) == {("ConfigMap", name): ResourceStatus.CREATED}
    await agent.stop()
    # The control plane writes the agent's leaving just after answering its close: stopped
    # before that write ends, it would cut it short (with the store's connection).
    with trio.fail_after(10):
        while not await left(plane):  # noqa: ASYNC110 - nothing signals the write
            await trio.sleep(0.05)
    await plane.stop()
    await plane.start()  # and once more: statuses and audit survive too
    for event_id in ids:
        assert (await plane.client.event(event_id)).state is EventState.COMPLETED
    audit = await plane.client.audit(limit=500)
    assert len(audit) > audit_before
    assert {
        "event.accepted",
        "event.delivered",
        "event.completed",
        "agent.connected",
        "agent.disconnected",
    } <= {entry.action for entry in audit}


async def test_restart_on_sqlite(
    nursery: trio.Nursery, tmp_path: Path, make_agent: Callable[..., Agent], cluster: Cluster
) -> None:
    await restart_then_deliver(ControlPlane(nursery, tmp_path / "cp"), make_agent(cluster))


async def test_restart_on_redis(
    nursery: trio.Nursery,
    tmp_path: Path,
    redis_server: RedisServer,
    make_agent: Callable[..., Agent],
    cluster: Cluster,
    caplog: pytest.LogCaptureFixture,
) -> None:
    plane = ControlPlane(nursery, tmp_path / "cp", store=StoreSpec.parse(redis_server.url))
    await restart_then_deliver(plane, make_agent(cluster))
    # This redis-server runs without AOF: the control plane says at start what that risks.
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("appendonly 'no'" in text for text in warnings), warnings
