"""A control plane (its own process) on Redis behind Sentinels, a real agent on a real cluster,
and producers streaming events to it; in the middle, Redis fails over: its primary killed with
kill -9, or switched with ``SENTINEL FAILOVER`` while it is still up. Every event answered 202
(or 200 "exists", for a retry of one whose first answer was lost) is there after the failover
and completes on the cluster; those answered 503 are retried with their id; the control plane
never restarts and its audit chain is intact."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest

from tests.bed.configmaps import Data, configmaps, create_namespace, event_body, wrong_objects
from tests.bed.follow import final_records, not_completed
from tests.bed.kube import Cluster
from tests.bed.producer import Producer, call
from tests.bed.roles import AgentProcess, ControlPlaneProcess
from tests.bed.sentinel import Node, SentinelBed, running_sentinels

pytestmark = pytest.mark.redis

EVENTS = 120
PRODUCERS = 3
PACE = 0.03
FAULT_AFTER = 30
"""Events accepted before the failover: the stream is well under way, and most of it follows."""
LOG_TAIL = 40
"""Lines of the control plane's log a failure shows."""


@attrs.define
class Stream:
    cp: ControlPlaneProcess
    bed: SentinelBed
    producers: list[Producer]
    agent_id: str
    namespace: str
    expected: dict[str, Data]

    @property
    def accepted(self) -> list[str]:
        return [event_id for p in self.producers for event_id in p.outcome.accepted]

    def wait_for_accepted(self, count: int) -> None:
        """Until the producers have ``count`` accepted between them (each waits its share)."""
        for producer in self.producers:
            producer.wait_for_accepted(count // len(self.producers), timeout=60)

    def check_all_done(self, kubeconfig: Path) -> None:
        try:
            self._check_all_done(kubeconfig)
        except (AssertionError, TimeoutError) as exc:
            said = "(not started)" if self.cp.process is None else self.cp.process.tail(LOG_TAIL)
            exc.add_note(f"the control plane's output ends with:\n{said}")
            raise

    def _check_all_done(self, kubeconfig: Path) -> None:
        for producer in self.producers:
            producer.join(timeout=180)
            assert producer.outcome.refused == {}
            assert set(producer.outcome.answers) <= {"202", "503", "200"}, producer.outcome.answers
        assert sorted(self.accepted) == sorted(e["event"] for e in self.expected.values())
        records = final_records(self.cp.api, self.accepted, timeout=180)
        assert not_completed(records) == []
        assert wrong_objects(self.expected, configmaps(kubeconfig, self.namespace)) == []
        assert self.cp.process is not None and self.cp.process.alive()
        assert self.cp.starts == 1
        status, record = call(self.cp.api, "GET", f"/agents/{self.agent_id}")
        assert (status, record["status"]) == (200, "connected")


@contextlib.contextmanager
def streaming(cluster: Cluster, bed: SentinelBed, work: Path) -> Iterator[Stream]:
    namespace = f"sentinel-{uuid.uuid4().hex[:8]}"
    create_namespace(cluster.kubeconfig, namespace)
    expected: dict[str, Data] = {}
    bodies: list[list[dict[str, object]]] = [[] for _ in range(PRODUCERS)]
    for n in range(EVENTS):
        event_id, name = f"{namespace}-{n:04d}", f"cm-{n:04d}"
        expected[name] = {"event": event_id, "n": str(n)}
        body = event_body(event_id, namespace, {name: expected[name]}, namespace)
        bodies[n % PRODUCERS].append(body)
    cp = ControlPlaneProcess(work / "cp", work / "cp.log", store=bed.url())
    agent: AgentProcess | None = None
    producers: list[Producer] = []
    try:
        cp.start()
        api = cp.create_admin_token()
        bundle = cp.create_bundle(namespace, work / "bundle")
        agent = AgentProcess(
            namespace, cp.agent_url, bundle, cluster.kubeconfig, work / "agent.log"
        )
        agent.start()
        producers = [Producer(api, share, pace=PACE * PRODUCERS) for share in bodies]
        for producer in producers:
            producer.start()
        yield Stream(cp, bed, producers, namespace, namespace, expected)
    finally:
        for producer in producers:
            producer.cancel()
        if agent is not None:
            agent.stop()
        cp.stop()
    intact, said = cp.verify_audit()
    assert intact, said


def switched_over(bed: SentinelBed) -> Node:
    old = bed.primary()
    bed.failover()
    return old


FAULTS: dict[str, Callable[[SentinelBed], Node]] = {
    "kill -9 of the primary": SentinelBed.kill_primary,
    "SENTINEL FAILOVER": switched_over,
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_no_accepted_event_is_lost_when_redis_fails_over(
    fault: str, cluster: Cluster, tmp_path: Path
) -> None:
    with (
        running_sentinels(tmp_path / "redis") as bed,
        streaming(cluster, bed, tmp_path) as stream,
    ):
        stream.wait_for_accepted(FAULT_AFTER)
        old = FAULTS[fault](bed)
        new = bed.wait_switched(old, replicas=1)
        assert new is not old
        stream.check_all_done(cluster.kubeconfig)
