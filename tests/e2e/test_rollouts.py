"""Rollouts end to end: a real control plane (on SQLite and on Redis), real agents on three
real clusters, labelled differently. A selector reaches exactly the agents it matches (the
object is on their clusters and on no other), waves go in order, and ``max_failures`` stops the
rest (a cluster whose agent's policy refuses the event really fails)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.bed.harness import Agent, ControlPlane
from tests.bed.kube import Cluster
from tests.bed.manifests import unique
from tests.bed.rollouts import (
    child,
    cm_yaml,
    configmap_data,
    ended_at,
    final,
    messages,
    started,
    started_at,
    states,
    timeline,
)
from transporter.agent.policy import load_policy


async def test_a_selector_reaches_its_clusters_only_and_waves_go_in_order(
    plane: ControlPlane,
    make_agent: Callable[..., Agent],
    cluster: Cluster,
    second_cluster: Cluster,
    third_cluster: Cluster,
) -> None:
    canary = make_agent(cluster, labels={"env": "prod", "ring": "canary", "team": "a"})
    late = make_agent(second_cluster, labels={"env": "prod", "ring": "late", "team": "b"})
    dev = make_agent(third_cluster, labels={"env": "dev", "ring": "canary", "team": "a"})
    await started(plane.agent_url, canary, late, dev)
    name = unique("sel")
    body = {
        "id": name,
        "selector": "env=prod",
        "payload": {"manifests": [cm_yaml(name, colour="blue")]},
        "strategy": {"waves": [{"selector": "ring=canary"}, {"selector": ""}]},
    }
    accepted = await plane.client.submit_rollout(body)
    assert accepted["status"] == "accepted"
    assert accepted["agents"] == sorted([canary.agent_id, late.agent_id])
    assert accepted["waves"] == [[canary.agent_id], [late.agent_id]]

    view = await final(plane.client, name)
    assert view["state"] == "completed", view
    assert states(view) == {canary.agent_id: "completed", late.agent_id: "completed"}
    # On the clusters of the agents matched, and not on the other.
    assert await configmap_data(cluster, name) == {"colour": "blue"}
    assert await configmap_data(second_cluster, name) == {"colour": "blue"}
    assert await configmap_data(third_cluster, name) is None
    assert await child(plane.client, f"{name}_{dev.agent_id}") is None
    # Waves in order: wave 1's event was made only after wave 0's had ended.
    assert [entry["wave"] for entry in timeline(view, "wave_started")] == [0, 1]
    first = await child(plane.client, f"{name}_{canary.agent_id}")
    second = await child(plane.client, f"{name}_{late.agent_id}")
    assert first is not None and second is not None
    assert first.event.rollout_id == second.event.rollout_id == name
    assert started_at(second) >= ended_at(first)
    wave_1 = timeline(view, "wave_started")[1]["at"]
    assert ended_at(first) <= wave_1 <= started_at(second)


async def test_past_max_failures_the_later_waves_are_not_started(
    cp: ControlPlane,
    make_agent: Callable[..., Agent],
    cluster: Cluster,
    second_cluster: Cluster,
    third_cluster: Cluster,
    tmp_path: Path,
) -> None:
    """The canary's agent allows only the namespace ``elsewhere``: it refuses the event, which
    fails for real; max_failures 0, so the two clusters of the next wave never get it."""
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text("namespaces: [elsewhere]\n")
    canary = make_agent(cluster, labels={"ring": "canary"}, policy=load_policy(policy_file))
    early = make_agent(second_cluster, labels={"ring": "early"})
    late = make_agent(third_cluster, labels={"ring": "late"})
    await started(cp.agent_url, canary, early, late)
    name = unique("fail")
    body = {
        "id": name,
        "selector": "ring",
        "payload": {"manifests": [cm_yaml(name, colour="red")]},
        "strategy": {
            "max_failures": 0,
            "waves": [{"selector": "ring=canary"}, {"selector": "ring in (early, late)"}],
        },
    }
    accepted = await cp.client.submit_rollout(body)
    assert accepted["waves"] == [[canary.agent_id], sorted([early.agent_id, late.agent_id])]

    view = await final(cp.client, name)
    assert view["state"] == "failed", view
    assert states(view) == {
        canary.agent_id: "failed",
        early.agent_id: "cancelled",
        late.agent_id: "cancelled",
    }
    said = messages(view)
    assert "refused by agent policy" in said[canary.agent_id]
    why = "not started: 1 cluster failed, more than max_failures 0"
    assert said[early.agent_id] == said[late.agent_id] == why
    assert "max_failures" in view["message"], view["message"]
    assert [entry["wave"] for entry in timeline(view, "wave_started")] == [0]
    assert len(timeline(view, "max_failures")) == 1
    # Nothing on any cluster: the refused one applied nothing, the others never had an event.
    for where in (cluster, second_cluster, third_cluster):
        assert await configmap_data(where, name) is None
    for agent in (early, late):
        assert await child(cp.client, f"{name}_{agent.agent_id}") is None
