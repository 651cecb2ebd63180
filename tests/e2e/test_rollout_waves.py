"""Waves end to end with several clusters in a wave (a real control plane, real agents on three
real clusters): the clusters of a wave run at once, and the next wave's events are made only
after every event of the wave before has ended."""

from __future__ import annotations

from collections.abc import Callable

from tests.bed.harness import Agent, ControlPlane
from tests.bed.kube import Cluster
from tests.bed.manifests import unique
from tests.bed.rollouts import (
    child,
    cm_yaml,
    configmap_data,
    ended_at,
    final,
    started,
    started_at,
    states,
    timeline,
)


async def test_the_next_wave_waits_for_every_cluster_of_the_wave_before(
    cp: ControlPlane,
    make_agent: Callable[..., Agent],
    cluster: Cluster,
    second_cluster: Cluster,
    third_cluster: Cluster,
) -> None:
    places = {
        "a": (cluster, "canary"),
        "b": (third_cluster, "canary"),
        "c": (second_cluster, "main"),
    }
    agents = {
        key: make_agent(where, labels={"ring": ring}) for key, (where, ring) in places.items()
    }
    await started(cp.agent_url, *agents.values())
    name = unique("waves")
    manifests = [cm_yaml(f"{name}-{n}", n=str(n)) for n in range(10)]
    body = {
        "id": name,
        "selector": "ring",
        "payload": {"manifests": manifests},
        "strategy": {"waves": [{"selector": "ring=canary"}]},  # the rest: a last wave
    }
    accepted = await cp.client.submit_rollout(body)
    canaries = sorted([agents["a"].agent_id, agents["b"].agent_id])
    assert accepted["waves"] == [canaries, [agents["c"].agent_id]]
    view = await final(cp.client, name)
    assert view["state"] == "completed", view
    assert set(states(view).values()) == {"completed"}
    records = {}
    for key, (where, _) in places.items():
        record = await child(cp.client, f"{name}_{agents[key].agent_id}")
        assert record is not None
        records[key] = record
        for n in range(10):
            assert await configmap_data(where, f"{name}-{n}") == {"n": str(n)}
    first_wave = (records["a"], records["b"])
    # Both canaries started before either ended (at once: no max_parallel) …
    assert max(map(started_at, first_wave)) <= min(map(ended_at, first_wave))
    # … and the last wave only after both had ended.
    assert started_at(records["c"]) >= max(map(ended_at, first_wave))
    waves_started = timeline(view, "wave_started")
    assert [entry["wave"] for entry in waves_started] == [0, 1]
    assert waves_started[1]["at"] >= max(map(ended_at, first_wave))
