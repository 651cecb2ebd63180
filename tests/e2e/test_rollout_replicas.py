"""Two control planes on one Redis store, real agents on three real clusters, some connected to
one replica and some to the other: a rollout submitted to one goes wave by wave over both
(approved through the other), each cluster once; a standing rollout reaches an agent that
registers later with either replica."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import trio

from tests.bed.harness import Agent, ControlPlane
from tests.bed.kube import Cluster
from tests.bed.manifests import unique
from tests.bed.redis import RedisServer
from tests.bed.rollouts import (
    child,
    cm_yaml,
    configmap_data,
    ended_at,
    final,
    started,
    started_at,
    states,
    submit_standing,
    timeline,
    until,
)
from transporter.config.store_spec import StoreSpec


async def test_a_rollout_goes_over_two_replicas(
    nursery: trio.Nursery,
    tmp_path: Path,
    redis_server: RedisServer,
    make_agent: Callable[..., Agent],
    cluster: Cluster,
    second_cluster: Cluster,
    third_cluster: Cluster,
) -> None:
    store = StoreSpec.parse(redis_server.url)
    one = ControlPlane(nursery, tmp_path / "one", store=store)
    two = ControlPlane(nursery, tmp_path / "two", store=store)
    await one.start()
    await two.start()
    team = unique("team")
    canary = make_agent(cluster, labels={"team": team, "ring": "canary"})
    early = make_agent(second_cluster, labels={"team": team, "ring": "main"})
    late = make_agent(third_cluster, labels={"team": team, "ring": "main"})
    for agent, plane in ((canary, one), (early, two), (late, two)):
        await started(plane.agent_url, agent)
    name = unique("two")
    body = {
        "id": name,
        "selector": f"team={team}",
        "payload": {"manifests": [cm_yaml(name, n="1")]},
        "strategy": {
            "max_parallel": 1,
            "waves": [{"selector": "ring=canary"}, {"selector": "", "approval": True}],
        },
    }
    await one.client.submit_rollout(body)
    await until(two.client, name, lambda v: v["state"] == "awaiting_approval")
    assert await configmap_data(second_cluster, name) is None
    await two.client.rollout_op(name, "approve")
    view = await final(one.client, name)
    assert view["state"] == "completed", view
    assert [entry["wave"] for entry in timeline(view, "wave_started")] == [0, 1]
    (approved,) = timeline(view, "approved")
    records = {}
    for agent, where in ((canary, cluster), (early, second_cluster), (late, third_cluster)):
        assert await configmap_data(where, name) == {"n": "1"}
        record = await child(one.client, f"{name}_{agent.agent_id}")
        assert record is not None
        records[agent.agent_id] = record
        assert [r.event.id for r in await two.client.events(agent=agent.agent_id)] == [
            record.event.id
        ]
    first, second = sorted(
        (records[early.agent_id], records[late.agent_id]), key=lambda r: r.event.id
    )
    assert started_at(first) >= approved["at"]
    assert started_at(second) >= ended_at(first)  # max_parallel 1, across replicas

    # A standing rollout: an agent that registers later with the other replica joins it.
    standing = unique("stand")
    await submit_standing(one.client, standing, f"team={team}")
    newcomer = make_agent(cluster, labels={"team": team, "ring": "new"})
    await newcomer.start(two.agent_url)
    view = await until(
        one.client,
        standing,
        lambda v: v["state"] == "standing" and states(v).get(newcomer.agent_id) == "completed",
    )
    assert view["total"] == 4
    await one.client.rollout_op(standing, "close")
    assert (await final(two.client, standing))["state"] == "completed"
