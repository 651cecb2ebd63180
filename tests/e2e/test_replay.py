"""An event that ran at an agent is never run there again, even when someone who can write the
control plane's store sets it back to ``queued`` (its signature still matches: the content is
unchanged), and even after the agent restarts: the agent's journal in its own cluster says it
ran. The replay is reported (the recorded outcome, marked) and audited."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable
from typing import Any

import trio
from kubernetes import client as k8s

from tests.bed.harness import Agent, ControlPlane, finish, submit_and_wait
from tests.bed.kube import Cluster
from tests.bed.manifests import configmap_yaml, event_body, unique
from tests.bed.rbac import in_thread, read_object
from transporter.agent.journal import LABEL
from transporter.agent.main import DEFAULT_STATE_NAMESPACE
from transporter.protocol.model import EventRecord, EventState


def set_back_to_queued(cp: ControlPlane, event_id: str) -> None:
    """What a writer of the SQLite file could do: the finished event is to be run again."""
    path = cp.spec.path
    assert path is not None
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        (text,) = db.execute("SELECT progress FROM events WHERE id = ?", (event_id,)).fetchone()
        progress: dict[str, Any] = json.loads(text)
        progress.update(state="queued", phase=None, message="", resources=[])
        db.execute(
            "UPDATE events SET state = 'queued', progress = ? WHERE id = ?",
            (json.dumps(progress), event_id),
        )


async def colour(cluster: Cluster, name: str) -> str:
    found = await in_thread(
        read_object,
        cluster,
        lambda api: k8s.CoreV1Api(api).read_namespaced_config_map(name, "default"),
    )
    return str(found.data["colour"])


async def replayed(cp: ControlPlane, event_id: str) -> EventRecord:
    """The event's record once the agent answered its new delivery."""
    with trio.fail_after(60):
        while True:
            record = await finish(cp, event_id)
            if record.message.startswith("not run again"):
                return record
            await trio.sleep(0.1)


async def two_events(cp: ControlPlane, agent: Agent) -> tuple[str, str]:
    """A ConfigMap made blue, then green; the blue event's id and the ConfigMap's name."""
    name = unique("cm")
    blue = await submit_and_wait(
        cp, event_body(agent.agent_id, configmap_yaml(name, None, colour="blue"))
    )
    assert blue.state is EventState.COMPLETED, blue.message
    green = await submit_and_wait(
        cp, event_body(agent.agent_id, configmap_yaml(name, None, colour="green"))
    )
    assert green.state is EventState.COMPLETED, green.message
    return blue.event.id, name


async def test_an_event_set_back_in_the_store_is_not_run_again_after_a_restart(
    cp: ControlPlane, make_agent: Callable[..., Agent], cluster: Cluster
) -> None:
    agent = make_agent(cluster)
    await agent.start(cp.agent_url)
    blue, name = await two_events(cp, agent)
    await agent.stop()  # its memory is gone; its journal, in the cluster, stays
    await cp.stop()
    set_back_to_queued(cp, blue)
    await cp.start()
    restarted = make_agent(cluster)
    restarted.agent_id = agent.agent_id
    await restarted.start(cp.agent_url)
    record = await replayed(cp, blue)
    assert record.state is EventState.COMPLETED
    assert await colour(cluster, name) == "green"  # not rolled back
    audit = await cp.client.audit(limit=50)
    [entry] = [e for e in audit if e.action == "event.replay_refused"]
    assert (entry.agent_id, entry.event_id) == (agent.agent_id, blue)
    journal = await in_thread(
        read_object,
        cluster,
        lambda api: k8s.CoreV1Api(api).list_namespaced_config_map(
            DEFAULT_STATE_NAMESPACE, label_selector=f"{LABEL}={agent.agent_id}"
        ),
    )
    assert any(blue in (cm.data or {}) for cm in journal.items)


async def test_an_event_set_back_while_the_agent_runs_is_not_run_again(
    cp: ControlPlane, make_agent: Callable[..., Agent], cluster: Cluster
) -> None:
    agent = make_agent(cluster)
    await agent.start(cp.agent_url)
    blue, name = await two_events(cp, agent)
    await cp.stop()  # the agent keeps running and dials again
    set_back_to_queued(cp, blue)
    await cp.start()
    record = await replayed(cp, blue)
    assert record.state is EventState.COMPLETED
    assert await colour(cluster, name) == "green"


async def test_events_of_the_agents_own_namespace_are_refused(
    cp: ControlPlane, make_agent: Callable[..., Agent], cluster: Cluster
) -> None:
    """Deleting its journal would let replays through: the agent's namespace is its own."""
    agent = make_agent(cluster)
    await agent.start(cp.agent_url)
    manifest = configmap_yaml(unique("cm"), DEFAULT_STATE_NAMESPACE)
    record = await submit_and_wait(cp, event_body(agent.agent_id, manifest))
    assert record.state is EventState.FAILED
    assert "(rule agent-namespace)" in record.message
