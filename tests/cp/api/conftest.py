"""A real control plane for the API's tests, on each store (the embedded SQLite file, and a
real redis-server), agents that register with labels and leave, and requests with any body and
token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from tests.bed.clients import Answer, http, raw_agent
from tests.bed.harness import FAST_CHANNEL, ControlPlane
from tests.bed.redis import RedisServer
from transporter.config.store_spec import StoreSpec

MANIFEST = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: default}\n"
PAYLOAD = {"manifests": [MANIFEST]}


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def store_spec(request: pytest.FixtureRequest) -> StoreSpec | None:
    """``None``: the embedded SQLite file in the data dir."""
    if request.param == "sqlite":
        return None
    server: RedisServer = request.getfixturevalue("redis_server")
    return StoreSpec.parse(server.url)


@pytest.fixture
async def cp(nursery: trio.Nursery, tmp_path: Path, store_spec: StoreSpec | None) -> ControlPlane:
    # Raw agents send no heartbeats: their connections must not be closed as dead meanwhile.
    channel = attrs.evolve(FAST_CHANNEL, dead_heartbeats=1000)
    plane = ControlPlane(nursery, tmp_path / "cp", store=store_spec, channel=channel)
    await plane.start()
    return plane


async def register(cp: ControlPlane, agent_id: str, **labels: str) -> None:
    """``agent_id`` registers with ``labels`` and goes away: the control plane knows it."""
    async with raw_agent(cp.agent_url, identity=agent_id) as agent:
        await agent.send({"type": "register", "agent": {"id": agent_id, "labels": labels}})
        assert (await agent.receive())["type"] == "welcome"


async def call(
    cp: ControlPlane, method: str, path: str, body: Any = None, *, token: str | None = None
) -> Answer:
    """A request to the API with the admin token (or ``token``)."""
    assert cp.bound is not None
    headers = {"Authorization": f"Bearer {token or cp.token}"}
    return await http(cp.bound.api_url + path, method, body, headers=headers)
