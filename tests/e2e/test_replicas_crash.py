"""Three control planes on one real redis-server, as processes users run, agents spread across
them (each given every replica's URL, its own first): one replica is killed with -9 in the
middle of a stream of events posted to every replica. Every event accepted (202) completes,
exactly once for its agent: one completion in the audit log, its ConfigMap applied. The
replicas look at the store once an hour only: the hints through Redis hand the events over."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from tests.bed.configmaps import configmaps, create_namespace, event_body
from tests.bed.follow import final_records, not_completed
from tests.bed.kube import Cluster
from tests.bed.producer import ApiAccess, call
from tests.bed.redis import RedisServer
from tests.bed.replica_planes import replicas
from tests.bed.roles import AgentProcess, ControlPlaneProcess

EVENTS = 36
"""Events in the stream (a third of them for each agent)."""
KILL_AFTER = 12
"""Events posted before the first replica is killed (some then on their way to agents)."""
DEADLINE = 120.0
HOUR = 3600
"""The replicas' safety looks (``--replica-look``): what is handed over, the hints and the
connections' first reads do."""


def spread_agents(
    planes: list[ControlPlaneProcess], cluster: Cluster, tmp_path: Path
) -> list[AgentProcess]:
    """One agent a replica, each dialling its own replica first, then the others in turn
    (each in its own namespace, named as the agent)."""
    urls = [plane.agent_url for plane in planes]
    agents = []
    for n, plane in enumerate(planes):
        agent_id = f"spread-{n}-{uuid.uuid4().hex[:6]}"
        create_namespace(cluster.kubeconfig, agent_id)
        bundle = plane.create_bundle(agent_id, tmp_path / f"bundle-{agent_id}")
        mine = urls[n:] + urls[:n]
        agent = AgentProcess(agent_id, mine[0], bundle, cluster.kubeconfig, tmp_path / agent_id)
        agent.argv += [arg for url in mine[1:] for arg in ("--cp-url", url)]
        agents.append(agent)
    return agents


def agent_id_of(agent: AgentProcess) -> str:
    return agent.argv[agent.argv.index("--agent-id") + 1]


def completions(api: ApiAccess) -> dict[str, int]:
    """How many ``event.completed`` entries the audit log holds for each event."""
    counts: dict[str, int] = {}
    cursor = ""
    while True:
        status, page = call(api, "GET", f"/audit?limit=500{cursor}")
        assert status == 200, page
        for entry in page["items"]:
            if entry["action"] == "event.completed":
                counts[entry["event_id"]] = counts.get(entry["event_id"], 0) + 1
        if not page["cursor"]:
            return counts
        cursor = f"&cursor={page['cursor']}"


def post_stream(apis: list[ApiAccess], agents: list[str], one: ControlPlaneProcess) -> list[str]:
    """Post :data:`EVENTS` events round the agents, each to a replica its agent is not
    connected to first (once killed, the first replica's share goes to the third); kill
    ``one`` (the first replica) after :data:`KILL_AFTER`. The ids of those accepted."""
    accepted: list[str] = []
    for n in range(EVENTS):
        if n == KILL_AFTER:
            one.kill()
        agent = agents[n % len(agents)]
        api = apis[(n + 1) % len(apis)]
        if n >= KILL_AFTER and api is apis[0]:
            api = apis[2]
        body = event_body(f"{agent}-{n}", agent, {f"cm-{n}": {"n": str(n)}}, agent)
        status, answer = call(api, "POST", "/events", body, timeout=30)
        assert status == 202, answer
        accepted.append(body["id"])
    return accepted


def test_a_replica_killed_in_a_stream_of_events_loses_none_and_runs_each_once(
    cluster: Cluster, redis_server: RedisServer, tmp_path: Path
) -> None:
    with replicas(tmp_path, redis_server.url, 3, ["--replica-look", str(HOUR)]) as planes:
        first = planes[0].create_admin_token()
        apis = [ApiAccess(p.api_url, first.token, p.data_dir / "ca.crt") for p in planes]
        agents = spread_agents(planes, cluster, tmp_path)
        try:
            for agent in agents:
                agent.start()
            ids = [agent_id_of(agent) for agent in agents]
            accepted = post_stream(apis, ids, planes[0])
            assert len(accepted) == EVENTS
            records = final_records(apis[1], accepted, timeout=DEADLINE)
            assert not_completed(records) == []
            moved = agents[0].process
            assert moved is not None and "reconnected to" in moved.output  # off the killed one
            assert_each_once(apis[2], ids, cluster, records)
        finally:
            for agent in agents:
                agent.stop()


def assert_each_once(
    api: ApiAccess, ids: list[str], cluster: Cluster, records: dict[str, dict[str, Any] | None]
) -> None:
    """One completion audited per event, applied once at most as its timeline says (an event
    run before the kill and sent again after is not run again: the agent's journal), and its
    ConfigMap on the cluster."""
    assert completions(api) == dict.fromkeys(records, 1)
    for record in records.values():
        assert record is not None
        phases = [entry["phase"] for entry in record["timeline"]]
        # Applied once at most: one "applying" as the agent began it. The same report sent
        # again to the next replica (the killed one stored it but never acknowledged it) comes
        # with the time it was made, and may add a second line with that same time.
        applying = {entry["at"] for entry in record["timeline"] if entry["phase"] == "applying"}
        assert len(applying) <= 1 and phases.count("completed") == 1, record
    for agent_id in ids:
        found = configmaps(cluster.kubeconfig, agent_id)
        mine = {event_id for event_id in records if event_id.startswith(f"{agent_id}-")}
        for event_id in mine:
            n = event_id.rsplit("-", 1)[1]
            assert found[f"cm-{n}"] == {"n": n}
