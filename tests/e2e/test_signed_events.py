"""Signed events: the agent runs only what the control plane signed. An event changed in the
store after it was accepted (someone with write access to Redis) is refused by the agent and
reported failed, and nothing of it reaches the cluster. Real Redis, real API server."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import coredis
import pytest
import trio
from kubernetes import client as k8s

from tests.bed.harness import Agent, ControlPlane, finish, read
from tests.bed.kube import Cluster
from tests.bed.manifests import configmap_yaml, event_body, unique
from tests.bed.redis import RedisServer
from transporter.config.store_spec import StoreSpec
from transporter.protocol import signing
from transporter.protocol.model import EventState, Phase

EVENTS_KEY = "transporter:event"
"""The Redis hash of stored events, apart from their progress (transporter.store.redis,
default prefix)."""


@pytest.fixture
def redis_cp(nursery: trio.Nursery, tmp_path: Path, redis_server: RedisServer) -> ControlPlane:
    return ControlPlane(nursery, tmp_path / "cp", store=StoreSpec.parse(redis_server.url))


async def edit_in_redis(
    server: RedisServer, event_id: str, change: Callable[[dict[str, Any]], None]
) -> None:
    """Change the stored event's JSON in Redis directly, as an intruder with write access
    would: no control plane involved."""
    client: coredis.Redis[str] = coredis.Redis.from_url(server.url, decode_responses=True)
    async with client:
        text = await client.hget(EVENTS_KEY, event_id)
        assert text is not None
        event = json.loads(text)
        change(event)
        await client.hset(EVENTS_KEY, {event_id: json.dumps(event, separators=(",", ":"))})


def flip_a_bit(signature: str) -> str:
    raw = bytearray(base64.b64decode(signature))
    raw[0] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


async def configmap(cluster: Cluster, name: str) -> Any:
    return await read(
        cluster, lambda api: k8s.CoreV1Api(api).read_namespaced_config_map(name, "default")
    )


@pytest.fixture
def agent(make_agent: Callable[[Cluster], Agent], cluster: Cluster) -> Agent:
    return make_agent(cluster)


async def test_an_event_edited_in_redis_is_refused_and_reported_failed(
    redis_cp: ControlPlane, redis_server: RedisServer, agent: Agent, cluster: Cluster
) -> None:
    await redis_cp.start()
    name, evil = unique("signed"), unique("evil")
    submitted = await redis_cp.client.submit(
        event_body(agent.agent_id, configmap_yaml(name, "default", greeting="hello"))
    )
    # While its agent is away, someone rewrites the event's manifests in Redis.
    injected = configmap_yaml(evil, "default", owned="yes")

    def rewrite(event: dict[str, Any]) -> None:
        event["payload"]["manifests"] = [injected]

    await edit_in_redis(redis_server, submitted.event_id, rewrite)
    stored = await redis_cp.client.event(submitted.event_id)
    assert evil in stored.event.payload.manifests[0]  # the store holds the changed event

    await agent.start(redis_cp.agent_url)
    record = await finish(redis_cp, submitted.event_id)
    assert record.state is EventState.FAILED
    assert record.phase is Phase.FAILED
    assert record.message == signing.REFUSED == "signature does not match: refused"
    assert record.resources == ()
    phases = [entry.phase for entry in record.timeline]
    assert Phase.VALIDATING not in phases and Phase.APPLYING not in phases
    assert await configmap(cluster, evil) is None  # nothing of it was applied
    assert await configmap(cluster, name) is None
    failed = [e for e in await redis_cp.client.audit() if e.action == "event.failed"]
    assert [(e.event_id, e.detail) for e in failed] == [(submitted.event_id, signing.REFUSED)]

    # The same agent still runs what the control plane did sign.
    good = await redis_cp.client.submit(
        event_body(agent.agent_id, configmap_yaml(name, "default", greeting="hello"))
    )
    assert (await finish(redis_cp, good.event_id)).state is EventState.COMPLETED
    assert await configmap(cluster, name) is not None


async def test_a_tampered_signature_is_refused(
    redis_cp: ControlPlane, redis_server: RedisServer, agent: Agent, cluster: Cluster
) -> None:
    await redis_cp.start()
    name = unique("resigned")
    submitted = await redis_cp.client.submit(
        event_body(agent.agent_id, configmap_yaml(name, "default", k="v"))
    )

    def tamper(event: dict[str, Any]) -> None:
        event["signature"] = flip_a_bit(event["signature"])

    await edit_in_redis(redis_server, submitted.event_id, tamper)
    await agent.start(redis_cp.agent_url)
    record = await finish(redis_cp, submitted.event_id)
    assert (record.state, record.message) == (EventState.FAILED, signing.REFUSED)
    assert await configmap(cluster, name) is None
