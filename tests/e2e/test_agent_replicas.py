"""An agent given several control-plane URLs (``--cp-url`` repeated), as processes users run:
it dials past a dead one to a live replica, and when its replica is killed with -9 it moves to
the other (on the same Redis) and completes the events posted there; what ran before the move
is not run again."""

from __future__ import annotations

import re
import socket
import time
import uuid
from pathlib import Path
from typing import Any

from tests.bed.configmaps import configmaps, create_namespace, event_body
from tests.bed.follow import final_record
from tests.bed.kube import Cluster
from tests.bed.producer import ApiAccess, call
from tests.bed.redis import RedisServer
from tests.bed.replica_planes import replicas
from tests.bed.roles import AgentProcess, ControlPlaneProcess

DEADLINE = 60.0


def agent_of(
    cp: ControlPlaneProcess, urls: list[str], cluster: Cluster, tmp_path: Path
) -> AgentProcess:
    """An agent (its own namespace's id) dialling ``urls`` in that order."""
    agent_id = f"replicas-{uuid.uuid4().hex[:8]}"
    create_namespace(cluster.kubeconfig, agent_id)
    bundle = cp.create_bundle(agent_id, tmp_path / f"bundle-{agent_id}")
    agent = AgentProcess(agent_id, urls[0], bundle, cluster.kubeconfig, tmp_path / "agent.log")
    agent.argv += [arg for url in urls[1:] for arg in ("--cp-url", url)]
    return agent


def completed(api: ApiAccess, agent_id: str, cluster: Cluster, name: str) -> dict[str, Any]:
    """Post an event of one ConfigMap ``name`` to ``api``; its record once it completed."""
    body = event_body(f"{agent_id}-{name}", agent_id, {name: {"via": api.url}}, agent_id)
    status, answer = call(api, "POST", "/events", body)
    assert status == 202, answer
    record = final_record(api, body["id"], deadline=time.monotonic() + DEADLINE)
    assert record is not None and record["state"] == "completed", record
    assert configmaps(cluster.kubeconfig, agent_id)[name] == {"via": api.url}
    return record


def test_an_agent_dials_past_a_dead_url_to_a_live_control_plane(
    cluster: Cluster, tmp_path: Path
) -> None:
    with socket.socket() as dead, replicas(tmp_path, "", 1) as (cp,):
        dead.bind(("127.0.0.1", 0))  # bound, never listening: refused, and the port stays ours
        dead_url = f"wss://127.0.0.1:{dead.getsockname()[1]}/ws"
        api = cp.create_admin_token()
        agent = agent_of(cp, [dead_url, cp.agent_url], cluster, tmp_path)
        try:
            agent.start()
            assert agent.process is not None
            said = agent.process.output
            assert f"control plane {dead_url}: cannot connect" in said
            assert f"registered with {cp.agent_url}" in said
            completed(api, agent.argv[agent.argv.index("--agent-id") + 1], cluster, "first")
        finally:
            agent.stop()


def test_an_agent_whose_replica_is_killed_moves_to_the_other_and_runs_what_it_is_sent(
    cluster: Cluster, redis_server: RedisServer, tmp_path: Path
) -> None:
    with replicas(tmp_path, redis_server.url, 2) as (one, two):
        one_api = one.create_admin_token()
        two_api = ApiAccess(two.api_url, one_api.token, two.data_dir / "ca.crt")
        agent = agent_of(one, [one.agent_url, two.agent_url], cluster, tmp_path)
        agent_id = agent.argv[agent.argv.index("--agent-id") + 1]
        try:
            agent.start()
            assert agent.process is not None
            assert f"registered with {one.agent_url}" in agent.process.output
            completed(one_api, agent_id, cluster, "before")

            one.kill()
            moved = re.compile(rf"reconnected to {re.escape(two.agent_url)}")
            agent.process.wait_for(moved, timeout=DEADLINE)
            after = completed(two_api, agent_id, cluster, "after")
            assert [e["phase"] for e in after["timeline"]].count("applying") == 1

            # The event that ran before the move was not run again by the other replica.
            status, record = call(two_api, "GET", f"/events/{agent_id}-before")
            assert status == 200 and record["state"] == "completed", record
            assert [e["phase"] for e in record["timeline"]].count("applying") == 1
        finally:
            agent.stop()
