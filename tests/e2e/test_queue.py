"""Queue mode end to end: ``produce k8s --mode queue --wait`` on two control planes on one real
redis-server, a real agent on a real cluster connected to one of them. The event goes through
the queue (taken by whichever replica), completes on the cluster, and ``--wait`` shows its
phases as in HTTP mode, from the other replica's API."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import trio

from tests.bed.harness import Agent, ControlPlane, run_produce
from tests.bed.kube import Cluster
from tests.bed.manifests import configmap_yaml, unique
from tests.bed.queue import settled
from tests.bed.redis import RedisServer
from tests.bed.rollouts import configmap_data, started
from transporter.config.store_spec import StoreSpec
from transporter.security.tokens import Role


async def test_an_event_through_the_queue_completes_and_wait_follows_it(
    nursery: trio.Nursery,
    tmp_path: Path,
    redis_server: RedisServer,
    make_agent: Callable[..., Agent],
    cluster: Cluster,
) -> None:
    store = StoreSpec.parse(redis_server.url)
    one = ControlPlane(nursery, tmp_path / "one", store=store)
    two = ControlPlane(nursery, tmp_path / "two", store=store)
    await one.start()
    await two.start()
    agent = make_agent(cluster)
    await started(one.agent_url, agent)
    token = await one.new_token("queue-e2e", Role.SUBMIT, (agent.agent_id,))
    name = unique("queued")
    manifest = tmp_path / "cm.yaml"
    manifest.write_text(configmap_yaml(name, None, a="1"))
    done = await run_produce(
        two, "k8s", "--mode", "queue", "--agent", agent.agent_id, "--manifest", str(manifest),
        "--wait", "--timeout", "60",
        token=token, env={"TRANSPORTER_REDIS": redis_server.url},
    )  # fmt: skip
    out = done.stdout.decode()
    assert done.returncode == 0, done.stderr.decode() + out
    assert "queued" in out.splitlines()[0]
    for word in ("received", "applying", "completed", "created"):
        assert word in out
    await settled(redis_server)
    events = await one.client.events(agent=agent.agent_id)
    (record,) = [e for e in events if e.event.created_by == "token:queue-e2e"]
    assert record.state.value == "completed"
    assert await configmap_data(cluster, name) == {"a": "1"}
