"""What the end-to-end tests of rollouts and plans share (their fixtures are in
tests/e2e/conftest.py): starting agents, following a rollout through the API until something
holds, and reading what a rollout left on each cluster (through the API server, never through
our records alone)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio
from kubernetes import client as k8s

from tests.bed.harness import Agent, read
from tests.bed.kube import Cluster
from transporter.produce.client import ApiError, Client
from transporter.protocol.model import EventRecord

POLL = 0.05
"""Seconds between two looks at a rollout: there is no request that waits for one to change."""
FINAL = frozenset({"completed", "failed", "cancelled"})


async def started(agent_url: str, *agents: Agent) -> None:
    """Start the agents against the control plane at ``agent_url``, each one connected before
    the next starts."""
    for agent in agents:
        await agent.start(agent_url)
        await agent.connected()


async def until(
    client: Client,
    rollout_id: str,
    done: Callable[[dict[str, Any]], bool],
    *,
    within: float = 60,
) -> dict[str, Any]:
    """The rollout's view (``GET /rollouts/{id}``) once ``done`` holds for it (within
    ``within`` seconds, else the test fails showing the last view)."""
    view: dict[str, Any] = {}
    try:
        with trio.fail_after(within):
            while True:
                view = await client.rollout(rollout_id)
                if done(view):
                    return view
                await trio.sleep(POLL)
    except trio.TooSlowError:
        raise AssertionError(f"rollout {rollout_id} never got there: {view}") from None


async def submit_standing(
    client: Client, rollout_id: str, selector: str, **data: str
) -> dict[str, Any]:
    """Submit a standing rollout of one ConfigMap named ``rollout_id`` (holding ``data``) to
    the agents ``selector`` matches, and wait until it stands (the agents matched at once are
    done): the submission's answer."""
    body = {
        "id": rollout_id,
        "selector": selector,
        "standing": True,
        "payload": {"manifests": [cm_yaml(rollout_id, **data)]},
    }
    accepted = await client.submit_rollout(body)
    await until(client, rollout_id, lambda v: v["state"] == "standing")
    return accepted


async def final(client: Client, rollout_id: str, *, within: float = 60) -> dict[str, Any]:
    """The rollout's view once it has ended."""
    return await until(client, rollout_id, lambda v: v["state"] in FINAL, within=within)


def states(view: dict[str, Any]) -> dict[str, str]:
    """Agent id → its cluster's state."""
    return {c["agent_id"]: c["state"] for c in view["clusters"]}


def messages(view: dict[str, Any]) -> dict[str, str]:
    return {c["agent_id"]: c["message"] for c in view["clusters"]}


def timeline(view: dict[str, Any], what: str) -> list[dict[str, Any]]:
    """The rollout's own timeline entries of one kind (``wave_started``, ``approved`` …)."""
    return [entry for entry in view["timeline"] if entry["what"] == what]


async def child(client: Client, event_id: str) -> EventRecord | None:
    """A child event's record; ``None`` when it does not exist."""
    try:
        return await client.event(event_id)
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise


def started_at(record: EventRecord) -> float:
    """When the event was stored (its first timeline entry, ``queued``)."""
    return record.timeline[0].at


def ended_at(record: EventRecord) -> float:
    """When it reached its final state."""
    assert record.state.terminal, record
    return next(entry.at for entry in record.timeline if entry.state.terminal)


async def configmap_data(
    cluster: Cluster, name: str, namespace: str = "default"
) -> dict[str, str] | None:
    """The ConfigMap's data as the API server holds it; ``None`` when it does not exist."""
    found = await configmap_object(cluster, name, namespace)
    return None if found is None else dict(found.data or {})


async def configmap_object(cluster: Cluster, name: str, namespace: str = "default") -> Any:
    """The ConfigMap (``V1ConfigMap``), or ``None``."""
    return await read(
        cluster, lambda api: k8s.CoreV1Api(api).read_namespaced_config_map(name, namespace)
    )


async def put_configmap(
    cluster: Cluster, name: str, data: dict[str, str], namespace: str = "default"
) -> None:
    """Create the ConfigMap, or replace its data (as someone with kubectl would)."""

    def put(api: k8s.ApiClient) -> Any:
        core = k8s.CoreV1Api(api)
        body = k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name=name), data=data)
        if core.list_namespaced_config_map(namespace, field_selector=f"metadata.name={name}").items:
            return core.patch_namespaced_config_map(name, namespace, {"data": data})
        return core.create_namespaced_config_map(namespace, body)

    await read(cluster, put)


def cm_yaml(name: str, namespace: str = "default", **data: str) -> str:
    """A ConfigMap manifest in ``namespace``."""
    body = "".join(f'\n  {key}: "{value}"' for key, value in data.items()) or " {}"
    return (
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {namespace}\n"
        f"data:{body}\n"
    )
