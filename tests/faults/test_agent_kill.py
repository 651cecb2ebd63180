"""kill -9 of the agent in the middle of applying an event: started again, it is given the event
again and completes it, and the API server holds exactly the event's objects."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from tests.bed.configmaps import configmaps, create_namespace, event_body, wrong_objects
from tests.bed.follow import TERMINAL, final_record
from tests.bed.kube import Cluster
from tests.bed.producer import ApiAccess, call
from tests.bed.roles import AgentProcess, ControlPlaneProcess

OBJECTS = 300
"""ConfigMaps in the event: applied one after the other, a few seconds of applying."""


def follow_until_phase(api: ApiAccess, event_id: str, phase: str, timeout: float) -> dict[str, Any]:
    """The event's record once its phase is ``phase`` (long poll); fails if it ends first."""
    deadline = time.monotonic() + timeout
    since = 0
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"event {event_id} not in phase {phase!r} within {timeout} s"
        status, record = call(api, "GET", f"/events/{event_id}?wait={left:.1f}&since={since}")
        assert status == 200, record
        if record["phase"] == phase:
            return dict(record)
        assert record["state"] not in TERMINAL, record["message"]
        since = len(record["timeline"])


def wait_for_some_objects(kubeconfig: Path, namespace: str, timeout: float) -> None:
    """Until the first of the event's objects is in the API server: nothing tells us but the
    API server itself, so it is asked again and again (bounded by ``timeout``)."""
    deadline = time.monotonic() + timeout
    while not configmaps(kubeconfig, namespace):
        assert time.monotonic() < deadline, f"no object in {namespace} within {timeout} s"
        time.sleep(0.01)


def test_an_event_whose_agent_is_killed_while_applying_is_delivered_again_and_completed(
    cluster: Cluster, tmp_path: Path
) -> None:
    namespace = f"agent-kill-{uuid.uuid4().hex[:8]}"
    create_namespace(cluster.kubeconfig, namespace)
    event_id = f"{namespace}-event"
    objects = {f"cm-{n:03d}": {"event": event_id, "n": str(n)} for n in range(OBJECTS)}
    cp = ControlPlaneProcess(tmp_path / "cp", tmp_path / "cp.log")
    agent: AgentProcess | None = None
    try:
        cp.start()
        api = cp.create_admin_token()
        bundle = cp.create_bundle(namespace, tmp_path / "bundle")
        agent = AgentProcess(
            namespace, cp.agent_url, bundle, cluster.kubeconfig, tmp_path / "agent.log"
        )
        agent.start()
        status, answer = call(
            api, "POST", "/events", event_body(event_id, namespace, objects, namespace)
        )
        assert status == 202, answer

        follow_until_phase(api, event_id, "applying", timeout=60)
        wait_for_some_objects(cluster.kubeconfig, namespace, timeout=60)
        agent.kill()
        applied_before = len(configmaps(cluster.kubeconfig, namespace))
        # Killed in the middle: some of the event's objects are there, not all.
        assert 0 < applied_before < OBJECTS

        agent.start()
        record = final_record(api, event_id, deadline=time.monotonic() + 120)
        assert record is not None
        assert record["state"] == "completed", record["message"]
        phases = [entry["phase"] for entry in record["timeline"]]
        assert phases.count("applying") == 2, phases  # the new process ran it again
        assert wrong_objects(objects, configmaps(cluster.kubeconfig, namespace)) == []
        # What the first process applied is unchanged by the second, the rest created. (The
        # request the first had sent when it died may have ended in the API server after the
        # count: at least that many are unchanged.)
        results = Counter(resource["status"] for resource in record["resources"])
        assert set(results) == {"unchanged", "created"}, results
        assert results.total() == OBJECTS
        assert results["unchanged"] >= applied_before, results
    finally:
        if agent is not None:
            agent.stop()
        cp.stop()
