"""kill -9 of the control plane (a real ``transporter cp`` process, on SQLite and on Redis with
appendfsync always) in the middle of a rollout over three real clusters: once while the second
wave awaits approval, once while that wave runs. Started again on the same store, it finishes
the rollout: no cluster lost (each child event completed, its objects on its cluster), no wave
started early (the second wave's events made after the approval), none started twice, and no
child event made twice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from tests.bed.harness import Agent
from tests.bed.kube import Cluster
from tests.bed.manifests import unique
from tests.bed.producer import ApiAccess, call
from tests.bed.roles import ControlPlaneProcess
from tests.bed.rollouts import (
    child,
    cm_yaml,
    configmap_data,
    final,
    started,
    started_at,
    states,
    submit_standing,
    timeline,
    until,
)
from transporter.produce.client import Client
from transporter.protocol.model import EventState

pytestmark = pytest.mark.timeout(300)

OBJECTS = 20
"""ConfigMaps in the event: a second or so of applying on each cluster."""


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def store_url(request: pytest.FixtureRequest) -> str | None:
    """``--store`` of the control plane: none (SQLite in its data folder) or a redis-server
    that writes every command to its file before answering."""
    if request.param == "redis":
        return str(request.getfixturevalue("redis_factory")(aof=True).url)
    return None


async def restart(cp: ControlPlaneProcess) -> None:
    """kill -9, then start it again on the same store and ports (waiting in a thread: the
    agents keep running on this loop meanwhile)."""
    cp.kill()
    await trio.to_thread.run_sync(cp.start)


async def test_a_rollout_survives_kill_9_of_the_control_plane(
    store_url: str | None,
    nursery: trio.Nursery,
    tmp_path: Path,
    cluster: Cluster,
    second_cluster: Cluster,
    third_cluster: Cluster,
) -> None:
    cp = ControlPlaneProcess(tmp_path / "cp", tmp_path / "cp.log", store=store_url)
    try:
        await trio.to_thread.run_sync(cp.start)
        api = await trio.to_thread.run_sync(cp.create_admin_token)
        client = Client(cp.api_url, token=api.token, ca_file=api.ca_file)
        prefix = unique("crash")
        places = {
            f"{prefix}-a": (cluster, "canary"),
            f"{prefix}-b": (second_cluster, "main"),
            f"{prefix}-c": (third_cluster, "main"),
        }
        for agent_id, (where, ring) in places.items():
            bundle = await trio.to_thread.run_sync(
                cp.create_bundle, agent_id, tmp_path / f"bundle-{agent_id}"
            )
            agent = Agent(nursery, agent_id, where, {"ring": ring}, bundle=bundle)
            await started(cp.agent_url, agent)
        await run_and_crash(cp, client, prefix, places)
        ok, said = await trio.to_thread.run_sync(cp.verify_audit)
        assert ok, said
    finally:
        await trio.to_thread.run_sync(cp.stop)


async def run_and_crash(
    cp: ControlPlaneProcess,
    client: Client,
    name: str,
    places: dict[str, tuple[Cluster, str]],
) -> None:
    canary, *main = places
    names = [f"{name}-{n:02d}" for n in range(OBJECTS)]
    body = {
        "id": name,
        "selector": "ring",
        "payload": {"manifests": [cm_yaml(cm, rollout=name) for cm in names]},
        "strategy": {
            "max_parallel": 1,
            "waves": [{"selector": "ring=canary"}, {"selector": "", "approval": True}],
        },
    }
    assert (await client.submit_rollout(body))["waves"] == [[canary], main]
    await until(client, name, lambda v: v["state"] == "awaiting_approval")

    await restart(cp)  # while the second wave awaits approval
    view = await client.rollout(name)
    assert view["state"] == "awaiting_approval", view
    assert states(view) == {canary: "completed", main[0]: "pending", main[1]: "pending"}
    for agent_id in main:
        assert await child(client, f"{name}_{agent_id}") is None

    assert (await client.rollout_op(name, "approve"))["approved"] == 1
    await until(client, name, lambda v: states(v)[main[0]] != "pending")
    await restart(cp)  # while the second wave runs

    view = await final(client, name, within=120)
    assert view["state"] == "completed", view
    assert states(view) == dict.fromkeys(places, "completed")
    assert [entry["wave"] for entry in timeline(view, "wave_started")] == [0, 1]
    (approved,) = timeline(view, "approved")
    for agent_id, (where, _) in places.items():
        record = await child(client, f"{name}_{agent_id}")
        assert record is not None and record.state is EventState.COMPLETED, record
        ends = [entry for entry in record.timeline if entry.state.terminal]
        assert len(ends) == 1, record.timeline
        if agent_id in main:
            assert started_at(record) >= approved["at"]
        # No other event for the agent: the child was made once.
        assert [r.event.id for r in await client.events(agent=agent_id)] == [record.event.id]
        for cm in names:
            assert await configmap_data(where, cm) == {"rollout": name}, (agent_id, cm)


async def test_a_standing_rollout_outlives_kill_9(
    nursery: trio.Nursery,
    tmp_path: Path,
    cluster: Cluster,
    second_cluster: Cluster,
) -> None:
    """A standing rollout, the control plane killed while it stands: an agent that registers
    with the new process gets the event; closed, the rollout ends, and stays ended across
    another kill."""
    cp = ControlPlaneProcess(tmp_path / "cp", tmp_path / "cp.log")
    try:
        await trio.to_thread.run_sync(cp.start)
        api = await trio.to_thread.run_sync(cp.create_admin_token)
        client = Client(cp.api_url, token=api.token, ca_file=api.ca_file)
        team = unique("team")

        async def agent(agent_id: str, where: Cluster) -> None:
            bundle = await trio.to_thread.run_sync(
                cp.create_bundle, agent_id, tmp_path / f"bundle-{agent_id}"
            )
            joined = Agent(nursery, agent_id, where, {"team": team}, bundle=bundle)
            await started(cp.agent_url, joined)

        await agent(f"{team}-a", cluster)
        name = unique("stand")
        await submit_standing(client, name, f"team={team}", n="1")
        await restart(cp)

        await agent(f"{team}-b", second_cluster)
        view = await until(
            client, name, lambda v: v["state"] == "standing" and v["counts"] == {"completed": 2}
        )
        assert sorted(states(view)) == [f"{team}-a", f"{team}-b"]
        assert await configmap_data(second_cluster, name) == {"n": "1"}
        await client.rollout_op(name, "close")
        assert (await final(client, name))["state"] == "completed"
        await restart(cp)
        assert (await client.rollout(name))["state"] == "completed"
    finally:
        await trio.to_thread.run_sync(cp.stop)


CHILDREN = 1000
"""Agents (that never come) of the rollout killed as it starts them: its children are stored
in two batches (of 500), then its record."""


def queued_events(api: ApiAccess) -> list[dict[str, Any]]:
    """Every queued event, a page at a time."""
    found: list[dict[str, Any]] = []
    cursor = ""
    while True:
        status, page = call(api, "GET", f"/events?state=queued&limit=500&cursor={cursor}")
        assert status == 200, page
        found += page["items"]
        if not page["cursor"]:
            return found
        cursor = page["cursor"]


async def test_kill_9_as_a_wave_starts_makes_each_child_once(
    store_url: str | None, tmp_path: Path
) -> None:
    """A rollout over 1000 listed agents that never come: the control plane is killed as soon
    as its first child exists (its engine is making the others) and started again: in the end
    every cluster has its one child, queued, and no other event exists."""
    cp = ControlPlaneProcess(tmp_path / "cp", tmp_path / "cp.log", store=store_url)
    try:
        await trio.to_thread.run_sync(cp.start)
        api = await trio.to_thread.run_sync(cp.create_admin_token)
        client = Client(cp.api_url, token=api.token, ca_file=api.ca_file)
        name = unique("many")
        agents = [f"{name}-{n:04d}" for n in range(CHILDREN)]
        body = {"id": name, "target_agents": agents, "payload": {"manifests": [cm_yaml(name)]}}
        assert (await client.submit_rollout(body))["status"] == "accepted"
        with trio.fail_after(30):
            while await child(client, f"{name}_{agents[0]}") is None:
                continue  # ask again at once: the kill must land before the record is saved
        await restart(cp)
        view = await until(client, name, lambda v: v["counts"] == {"queued": CHILDREN})
        expected = {f"{name}_{agent}" for agent in agents}
        assert {c["event_id"] for c in view["clusters"]} == expected
        queued = await trio.to_thread.run_sync(queued_events, api)
        assert len(queued) == CHILDREN
        assert {item["event"]["id"] for item in queued} == expected
        assert {item["event"]["rollout_id"] for item in queued} == {name}
        assert [entry["wave"] for entry in timeline(view, "wave_started")] == [0], view["timeline"]
    finally:
        await trio.to_thread.run_sync(cp.stop)
