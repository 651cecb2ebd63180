"""Plans end to end, and rollouts that wait for readiness: a real control plane, real agents on
real clusters. A plan's diff is what its apply then does (unchanged objects are not even
written: same resourceVersion); an object edited between the plan and its apply is ``drifted``
and left as edited, while the rest is applied. A first wave whose Deployment never becomes ready
fails in the Deployment's own words, and the second wave never starts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.bed.controllers import deployment_json
from tests.bed.harness import Agent, ControlPlane, read
from tests.bed.kube import Cluster
from tests.bed.manifests import unique
from tests.bed.rollouts import (
    child,
    cm_yaml,
    configmap_data,
    configmap_object,
    ended_at,
    final,
    messages,
    put_configmap,
    started,
    started_at,
    states,
    timeline,
)
from tests.bed.rollouts import until as until_rollout
from transporter.produce.client import Client


async def planned(client: Client, plan_id: str) -> dict[str, Any]:
    """``GET /plans/{id}`` once the plan has ended."""
    await until_rollout(client, plan_id, lambda v: v["state"] in ("completed", "failed"))
    return await client.plan(plan_id)


def results(view: dict[str, Any], agent_id: str) -> dict[str, dict[str, Any]]:
    """A cluster's results in a plan's (or an event's) view: object name → its result."""
    (cluster,) = [c for c in view["clusters"] if c["agent_id"] == agent_id]
    return {result["name"]: result for result in cluster["resources"]}


def version(found: Any) -> str:
    return str(found.metadata.resource_version)


async def test_a_plans_diff_is_what_its_apply_does_and_drift_is_left_alone(
    plane: ControlPlane,
    make_agent: Callable[..., Agent],
    cluster: Cluster,
    second_cluster: Cluster,
) -> None:
    """An earlier rollout put ``changed`` (key=old) and ``same`` (as the manifests say) on two
    clusters; ``fresh`` is on neither. Between plan and apply, someone edits ``changed`` on the
    second cluster. (Applied by us before, ``same`` is not even written again: an object
    someone else made gets our field manager's ownership written, a new resourceVersion.)"""
    steady = make_agent(cluster, labels={"plan": "yes"})
    edited = make_agent(second_cluster, labels={"plan": "yes"})
    await started(plane.agent_url, steady, edited)
    changed, same, fresh = unique("changed"), unique("same"), unique("fresh")
    seed = unique("seed")
    before = [cm_yaml(changed, key="old"), cm_yaml(same, key="v")]
    body = {"id": seed, "selector": "plan=yes", "payload": {"manifests": before}}
    await plane.client.submit_rollout(body)
    assert (await final(plane.client, seed))["state"] == "completed"
    versions = {
        where.name: version(await configmap_object(where, same))
        for where in (cluster, second_cluster)
    }
    manifests = [cm_yaml(changed, key="new"), cm_yaml(same, key="v"), cm_yaml(fresh, key="f")]
    plan_id = unique("plan")
    body = {"id": plan_id, "selector": "plan=yes", "payload": {"manifests": manifests}}
    accepted = await plane.client.submit_plan(body)
    assert accepted["agents"] == sorted([steady.agent_id, edited.agent_id])

    view = await planned(plane.client, plan_id)
    assert view["state"] == "completed", view
    for agent in (steady, edited):
        found = results(view, agent.agent_id)
        assert {name: r["status"] for name, r in found.items()} == {
            changed: "would_change",
            same: "unchanged",
            fresh: "would_create",
        }
        assert found[changed]["diff"] == [
            {"path": "data.key", "op": "change", "old": '"old"', "new": '"new"'}
        ]
        assert all(r["fingerprint"] for name, r in found.items() if name != fresh)
    # A plan changes nothing.
    for where in (cluster, second_cluster):
        assert await configmap_data(where, changed) == {"key": "old"}
        assert await configmap_data(where, fresh) is None

    await put_configmap(second_cluster, changed, {"key": "edited"})
    applying = await plane.client.apply_plan(plan_id, {"id": unique("apply")})
    assert applying["agents"] == sorted([steady.agent_id, edited.agent_id])
    applied = await final(plane.client, applying["rollout_id"])
    assert applied["plan_id"] == plan_id
    assert states(applied) == {steady.agent_id: "completed", edited.agent_id: "drifted"}
    assert applied["state"] == "failed"
    assert messages(applied)[edited.agent_id].startswith("drifted:")
    assert "plan again" in messages(applied)[edited.agent_id]

    # The first cluster: exactly what the plan said.
    assert await configmap_data(cluster, changed) == {"key": "new"}
    assert await configmap_data(cluster, fresh) == {"key": "f"}
    # The second: the edit stays; the rest is applied.
    assert await configmap_data(second_cluster, changed) == {"key": "edited"}
    assert await configmap_data(second_cluster, fresh) == {"key": "f"}
    for where in (cluster, second_cluster):
        assert version(await configmap_object(where, same)) == versions[where.name]
    record = await child(plane.client, f"{applying['rollout_id']}_{edited.agent_id}")
    assert record is not None
    shown = {r.name: r.status.value for r in record.resources}
    assert shown == {changed: "drifted", same: "unchanged", fresh: "created"}


async def read_deployment(where: Cluster, name: str) -> Any:
    return await read(
        where, lambda api: k8s.AppsV1Api(api).read_namespaced_deployment(name, "default")
    )


@pytest.mark.timeout(300)
async def test_a_first_wave_that_never_becomes_ready_starts_no_second_wave(
    cp: ControlPlane,
    make_agent: Callable[..., Agent],
    ready_cluster: Cluster,
    cluster: Cluster,
) -> None:
    canary = make_agent(ready_cluster, labels={"ring": "canary"})
    rest = make_agent(cluster, labels={"ring": "rest"})
    await started(cp.agent_url, canary, rest)
    name = unique("stuck")
    body = {
        "id": name,
        "selector": "ring",
        "payload": {
            "manifests": [deployment_json(name, never_ready=True)],
            "wait_ready": True,
            "ready_timeout": 10,
        },
        "strategy": {"waves": [{"selector": "ring=canary"}, {"selector": ""}]},
    }
    await cp.client.submit_rollout(body)
    view = await final(cp.client, name, within=90)
    assert view["state"] == "failed", view
    assert states(view) == {canary.agent_id: "failed", rest.agent_id: "cancelled"}
    said = messages(view)[canary.agent_id]
    assert said.startswith(f"not ready after 10 s: Deployment/{name}: "), said
    assert "Deployment does not have minimum availability" in said
    assert [entry["wave"] for entry in timeline(view, "wave_started")] == [0]
    assert await read_deployment(ready_cluster, name) is not None
    assert await read_deployment(cluster, name) is None
    assert await child(cp.client, f"{name}_{rest.agent_id}") is None


@pytest.mark.timeout(300)
async def test_the_next_wave_starts_once_the_first_is_ready(
    cp: ControlPlane,
    make_agent: Callable[..., Agent],
    ready_cluster: Cluster,
    cluster: Cluster,
) -> None:
    """On the ready test bed the first wave's Deployment rolls out and its cluster completes,
    ready; only then does the second wave start (on a cluster without controllers, where the
    same Deployment is never ready: it fails at the timeout)."""
    canary = make_agent(ready_cluster, labels={"ring": "canary"})
    rest = make_agent(cluster, labels={"ring": "rest"})
    await started(cp.agent_url, canary, rest)
    name = unique("ready")
    body = {
        "id": name,
        "selector": "ring",
        "payload": {
            "manifests": [deployment_json(name)],
            "wait_ready": True,
            "ready_timeout": 12,
        },
        "strategy": {"waves": [{"selector": "ring=canary"}, {"selector": ""}]},
    }
    await cp.client.submit_rollout(body)
    view = await final(cp.client, name, within=120)
    assert states(view) == {canary.agent_id: "completed", rest.agent_id: "failed"}, view
    ready = await child(cp.client, f"{name}_{canary.agent_id}")
    later = await child(cp.client, f"{name}_{rest.agent_id}")
    assert ready is not None and later is not None
    assert [r.ready.value if r.ready else None for r in ready.resources] == ["current"]
    assert started_at(later) >= ended_at(ready)
    assert later.message.startswith(f"not ready after 12 s: Deployment/{name}: "), later.message
    shown = await read_deployment(ready_cluster, name)
    assert shown is not None and shown.status.available_replicas == 1
