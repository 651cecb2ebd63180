"""The less trodden paths of rollouts and plans, end to end (a real control plane, real agents on
real clusters): a Secret's values never leave the cluster in a plan, an object the policy refuses
in a plan is left alone by its apply while the rest is applied, an object that appeared between
plan and apply is not overwritten, a pause between waves is kept, and one child event cancelled
by hand counts as a cluster that did not complete; a cancelled rollout lets its running
cluster finish."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client as k8s

from tests.bed.harness import Agent, ControlPlane, read, submit_and_wait
from tests.bed.kube import Cluster
from tests.bed.manifests import deployment_yaml, namespace_yaml, unique
from tests.bed.rollouts import (
    child,
    cm_yaml,
    configmap_data,
    ended_at,
    final,
    messages,
    put_configmap,
    started,
    started_at,
    states,
    timeline,
    until,
)
from transporter.agent.policy import load_policy
from transporter.protocol.model import EventState


def secret_yaml(name: str, password: str) -> str:
    return (
        f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: default\n"
        f"stringData:\n  password: {password}\n"
    )


async def secret_password(cluster: Cluster, name: str) -> str | None:
    found = await read(
        cluster, lambda api: k8s.CoreV1Api(api).read_namespaced_secret(name, "default")
    )
    if found is None:
        return None
    return base64.b64decode(found.data["password"]).decode()


async def planned(cp: ControlPlane, plan_id: str) -> dict[str, Any]:
    view = await final(cp.client, plan_id)
    assert view["state"] == "completed", view
    return await cp.client.plan(plan_id)


def results(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (cluster,) = view["clusters"]
    return {result["name"]: result for result in cluster["resources"]}


async def test_a_plan_never_shows_a_secrets_values(
    cp: ControlPlane, make_agent: Callable[..., Agent], cluster: Cluster
) -> None:
    agent = make_agent(cluster)
    await started(cp.agent_url, agent)
    name = unique("db")
    old, new = "old-" + unique("pw"), "new-" + unique("pw")
    seed = {"target_agent": agent.agent_id, "payload": {"manifests": [secret_yaml(name, old)]}}
    assert (await submit_and_wait(cp, seed)).state is EventState.COMPLETED
    assert await secret_password(cluster, name) == old
    plan_id = unique("plan")
    body = {
        "id": plan_id,
        "target_agents": [agent.agent_id],
        "payload": {"manifests": [secret_yaml(name, new)]},
    }
    await cp.client.submit_plan(body)
    view = await planned(cp, plan_id)
    (result,) = results(view).values()
    assert result["status"] == "would_change"
    assert result["diff"], result
    assert {change["path"].split(".")[0].split("[")[0] for change in result["diff"]} == {"data"}
    shown = repr(view) + repr(await cp.client.event(f"{plan_id}_{agent.agent_id}"))
    for secret in (old, new, base64.b64encode(old.encode()).decode()):
        assert secret not in shown
    assert base64.b64encode(new.encode()).decode() not in shown
    applied = await cp.client.apply_plan(plan_id, {})
    assert (await final(cp.client, applied["rollout_id"]))["state"] == "completed"
    assert await secret_password(cluster, name) == new


async def test_what_the_policy_refused_in_the_plan_is_left_alone_by_its_apply(
    cp: ControlPlane, make_agent: Callable[..., Agent], cluster: Cluster, tmp_path: Path
) -> None:
    """The agent allows the namespace ``default`` only: the plan's object elsewhere is
    ``refused``; applying the plan applies the rest and leaves it alone (``drifted``)."""
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text("namespaces: [default]\n")
    agent = make_agent(cluster, policy=load_policy(policy_file))
    await started(cp.agent_url, agent)
    allowed, elsewhere = unique("ok"), unique("no")
    manifests = [cm_yaml(allowed, a="1"), cm_yaml(elsewhere, "kube-public", a="1")]
    plan_id = unique("plan")
    body = {"id": plan_id, "target_agents": [agent.agent_id], "payload": {"manifests": manifests}}
    await cp.client.submit_plan(body)
    found = results(await planned(cp, plan_id))
    assert found[allowed]["status"] == "would_create"
    assert found[elsewhere]["status"] == "refused"
    assert "(rule namespaces)" in found[elsewhere]["message"]

    applied = await cp.client.apply_plan(plan_id, {})
    view = await final(cp.client, applied["rollout_id"])
    assert states(view) == {agent.agent_id: "drifted"}
    assert messages(view)[agent.agent_id].startswith("drifted:")
    assert await configmap_data(cluster, allowed) == {"a": "1"}
    assert await configmap_data(cluster, elsewhere, "kube-public") is None


async def test_an_object_that_appeared_since_the_plan_is_not_overwritten(
    cp: ControlPlane, make_agent: Callable[..., Agent], cluster: Cluster
) -> None:
    agent = make_agent(cluster)
    await started(cp.agent_url, agent)
    appeared, other = unique("appeared"), unique("other")
    plan_id = unique("plan")
    manifests = [cm_yaml(appeared, owner="us"), cm_yaml(other, owner="us")]
    body = {"id": plan_id, "target_agents": [agent.agent_id], "payload": {"manifests": manifests}}
    await cp.client.submit_plan(body)
    found = results(await planned(cp, plan_id))
    assert {name: r["status"] for name, r in found.items()} == {
        appeared: "would_create",
        other: "would_create",
    }
    await put_configmap(cluster, appeared, {"owner": "someone"})
    applied = await cp.client.apply_plan(plan_id, {})
    view = await final(cp.client, applied["rollout_id"])
    assert states(view) == {agent.agent_id: "drifted"}
    assert await configmap_data(cluster, appeared) == {"owner": "someone"}
    assert await configmap_data(cluster, other) == {"owner": "us"}


async def test_a_pause_between_waves_is_kept(
    cp: ControlPlane,
    make_agent: Callable[..., Agent],
    cluster: Cluster,
    second_cluster: Cluster,
) -> None:
    first = make_agent(cluster, labels={"ring": "first"})
    second = make_agent(second_cluster, labels={"ring": "second"})
    await started(cp.agent_url, first, second)
    name = unique("pause")
    body = {
        "id": name,
        "selector": "ring",
        "payload": {"manifests": [cm_yaml(name)]},
        "strategy": {"waves": [{"selector": "ring=first"}, {"selector": "", "pause": 2}]},
    }
    await cp.client.submit_rollout(body)
    paused = await until(cp.client, name, lambda v: v["state"] == "paused")
    assert states(paused)[second.agent_id] == "pending"
    assert await configmap_data(second_cluster, name) is None
    view = await final(cp.client, name)
    assert view["state"] == "completed", view
    before = await child(cp.client, f"{name}_{first.agent_id}")
    after = await child(cp.client, f"{name}_{second.agent_id}")
    assert before is not None and after is not None
    assert started_at(after) >= ended_at(before) + 2
    assert await configmap_data(second_cluster, name) == {}


async def test_a_child_cancelled_by_hand_is_a_cluster_that_did_not_complete(
    cp: ControlPlane, make_agent: Callable[..., Agent], cluster: Cluster
) -> None:
    """A rollout over an online agent and one that never comes: the latter's queued child is
    cancelled by ``POST /events/{id}/cancel``; the rollout ends failed (past ``max_failures``
    0, the default), saying so."""
    agent = make_agent(cluster)
    await started(cp.agent_url, agent)
    absent = unique("absent")
    name = unique("hand")
    body = {
        "id": name,
        "target_agents": [agent.agent_id, absent],
        "payload": {"manifests": [cm_yaml(name)]},
    }
    await cp.client.submit_rollout(body)
    await until(cp.client, name, lambda v: states(v)[agent.agent_id] == "completed")
    answer = await cp.client.cancel_event(f"{name}_{absent}")
    assert answer["state"] == "cancelled"
    view = await final(cp.client, name)
    assert view["state"] == "failed", view
    assert states(view) == {agent.agent_id: "completed", absent: "cancelled"}
    assert view["message"].startswith("1 cluster failed"), view["message"]
    record = await child(cp.client, f"{name}_{absent}")
    assert record is not None and record.state is EventState.CANCELLED
    assert len(timeline(view, "wave_started")) == 1


async def test_cancel_lets_the_running_cluster_finish(
    cp: ControlPlane, make_agent: Callable[..., Agent], cluster: Cluster
) -> None:
    """The first cluster waits for a Deployment to be ready (it never is: this cluster runs no
    controllers) for 5 s; the second, offline, waits its turn (max_parallel 1). Cancelled
    meanwhile: the first finishes (the Deployment applied, then failed at its timeout), the
    second never starts, and the rollout ends cancelled."""
    agent = make_agent(cluster)
    await started(cp.agent_url, agent)
    offline = f"{agent.agent_id}-z"  # after the online one in id order
    name = unique("run")
    body = {
        "id": name,
        "target_agents": [agent.agent_id, offline],
        "payload": {
            "manifests": [deployment_yaml(name, "default")],
            "wait_ready": True,
            "ready_timeout": 5,
        },
        "strategy": {"max_parallel": 1},
    }
    await cp.client.submit_rollout(body)
    await until(cp.client, name, lambda v: v["clusters"][0]["phase"] == "verifying")
    answer = await cp.client.rollout_op(name, "cancel")
    assert (answer["cancelled"], answer["running"]) == (1, 1), answer
    view = await final(cp.client, name)
    assert view["state"] == "cancelled", view
    assert states(view) == {agent.agent_id: "failed", offline: "cancelled"}
    assert messages(view)[agent.agent_id].startswith(f"not ready after 5 s: Deployment/{name}")
    assert await child(cp.client, f"{name}_{offline}") is None
    found = await read(
        cluster, lambda api: k8s.AppsV1Api(api).read_namespaced_deployment(name, "default")
    )
    assert found is not None


async def test_a_plan_of_a_new_namespace_and_its_objects_applies_them(
    cp: ControlPlane, make_agent: Callable[..., Agent], cluster: Cluster
) -> None:
    agent = make_agent(cluster)
    await started(cp.agent_url, agent)
    namespace, name = unique("ns"), unique("cm")
    manifests = [namespace_yaml(namespace), cm_yaml(name, namespace, a="1")]
    plan_id = unique("plan")
    body = {"id": plan_id, "target_agents": [agent.agent_id], "payload": {"manifests": manifests}}
    await cp.client.submit_plan(body)
    found = results(await planned(cp, plan_id))
    assert {n: r["status"] for n, r in found.items()} == {
        namespace: "would_create",
        name: "would_create",
    }
    applied = await cp.client.apply_plan(plan_id, {})
    view = await final(cp.client, applied["rollout_id"])
    assert view["state"] == "completed", view
    assert await configmap_data(cluster, name, namespace) == {"a": "1"}


async def test_a_delete_plan_deletes_what_it_saw_and_leaves_what_changed(
    cp: ControlPlane, make_agent: Callable[..., Agent], cluster: Cluster
) -> None:
    """A plan of action delete says what it would delete (and what is not there); one object
    is edited before the apply: it stays, the other is deleted."""
    agent = make_agent(cluster)
    await started(cp.agent_url, agent)
    gone, kept = unique("gone"), unique("kept")
    for name in (gone, kept):
        await put_configmap(cluster, name, {"a": "1"})
    never = unique("never")
    manifests = [cm_yaml(gone, a="1"), cm_yaml(kept, a="1"), cm_yaml(never)]
    plan_id = unique("plan")
    body = {
        "id": plan_id,
        "target_agents": [agent.agent_id],
        "payload": {"manifests": manifests, "action": "delete"},
    }
    await cp.client.submit_plan(body)
    found = results(await planned(cp, plan_id))
    assert {n: r["status"] for n, r in found.items()} == {
        gone: "would_delete",
        kept: "would_delete",
        never: "not_found",
    }
    assert await configmap_data(cluster, gone) == {"a": "1"}  # a plan deletes nothing
    await put_configmap(cluster, kept, {"a": "2"})
    applied = await cp.client.apply_plan(plan_id, {})
    view = await final(cp.client, applied["rollout_id"])
    assert states(view) == {agent.agent_id: "drifted"}, view
    assert await configmap_data(cluster, gone) is None
    assert await configmap_data(cluster, kept) == {"a": "2"}
