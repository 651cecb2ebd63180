"""kill -9 of redis-server (AOF, appendfsync always) while events stream in, and its restart on
the same port and files: the control plane answers 503 while Redis is down and serves again
when it is back, without a restart of its own; nothing answered 202 is lost, and every event
completes."""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs

from tests.bed.configmaps import (
    Data,
    configmaps,
    create_namespace,
    event_body,
    wrong_objects,
)
from tests.bed.follow import final_records, not_completed
from tests.bed.kube import Cluster
from tests.bed.producer import Producer, Unanswered, call
from tests.bed.redis import RedisServer
from tests.bed.roles import DIAL_FAILED, AgentProcess, ControlPlaneProcess
from transporter.cp.channel import ChannelSettings

_CHANNEL = ChannelSettings()  # the defaults, which the control plane processes here run with
SILENCE_NOTICED = _CHANNEL.heartbeat_interval * _CHANNEL.missed_heartbeats + (
    _CHANNEL.heartbeat_interval / 4  # how often the control plane looks
)
"""Seconds after which the control plane has noticed that a connection is silent, and has
marked its agent unhealthy in the store."""
CONNECTED_AGAIN = re.compile(r"(registered with|reconnected to)")


def assert_alive(cp: ControlPlaneProcess) -> None:
    assert cp.process is not None
    code = cp.process.popen.poll()
    assert code is None, f"the control plane exited with {code}:\n{cp.process.tail(60)}"


def readyz(cp: ControlPlaneProcess) -> tuple[int, Any]:
    """``GET /readyz``; when nothing answers, the control plane must have died: show why."""
    try:
        return call(cp.api, "GET", "/readyz")
    except Unanswered:
        assert cp.process is not None
        with contextlib.suppress(subprocess.TimeoutExpired):
            cp.process.popen.wait(5)
        assert_alive(cp)
        raise


def wait_until_ready(cp: ControlPlaneProcess, timeout: float) -> None:
    """Until ``/readyz`` says the store answers again. The control plane's store connection
    recovers on its own; there is no signal of it but the answer, so it is asked again."""
    deadline = time.monotonic() + timeout
    while True:
        status, body = readyz(cp)
        if status == 200:
            return
        assert status == 503, body
        assert time.monotonic() < deadline, f"still not ready {timeout} s after Redis returned"
        time.sleep(0.05)


@attrs.define
class Stream:
    """A control plane on Redis, an agent, and a producer streaming events to it."""

    cp: ControlPlaneProcess
    redis: RedisServer
    producer: Producer
    agent_id: str
    namespace: str
    expected: dict[str, Data]

    def kill_redis(self) -> None:
        """kill -9 of Redis, and the control plane's first 503s: it is up, its store down."""
        failed_before = self.producer.failed_attempts
        self.redis.kill()
        self.producer.wait_for_failures(failed_before + 5, timeout=60)
        status, body = readyz(self.cp)
        assert (status, body["error"]) == (503, "store_unavailable")

    def restart_redis(self) -> None:
        assert_alive(self.cp)
        self.redis.restart()
        wait_until_ready(self.cp, timeout=30)

    def check_all_done(self, kubeconfig: Path) -> None:
        """Every event accepted, completed, its object right; the control plane never died."""
        self.producer.join(timeout=120)
        outcome = self.producer.outcome
        assert outcome.refused == {}
        assert len(outcome.accepted) == len(self.expected)
        # Every attempt was answered: 202; 503 while Redis was down; 200 "exists" when Redis
        # ran a submit but died before its reply, so the control plane answered 503 and the
        # retry found the event stored.
        assert set(outcome.answers) <= {"202", "503", "200"}, outcome.answers
        records = final_records(self.cp.api, outcome.accepted, timeout=120)
        assert not_completed(records) == []
        assert wrong_objects(self.expected, configmaps(kubeconfig, self.namespace)) == []
        assert_alive(self.cp)
        assert self.cp.starts == 1
        status, record = call(self.cp.api, "GET", f"/agents/{self.agent_id}")
        assert (status, record["status"]) == (200, "connected")


@contextlib.contextmanager
def streaming(
    cluster: Cluster, redis: RedisServer, work: Path, *, events: int, pace: float
) -> Iterator[Stream]:
    """Start it all; on the way out stop it all, and check the store's audit chain."""
    namespace = f"redis-kill-{uuid.uuid4().hex[:8]}"
    create_namespace(cluster.kubeconfig, namespace)
    expected: dict[str, Data] = {}
    bodies = []
    for n in range(events):
        event_id, name = f"{namespace}-{n:04d}", f"cm-{n:04d}"
        expected[name] = {"event": event_id, "n": str(n)}
        bodies.append(event_body(event_id, namespace, {name: expected[name]}, namespace))
    cp = ControlPlaneProcess(work / "cp", work / "cp.log", store=redis.url)
    agent: AgentProcess | None = None
    producer: Producer | None = None
    try:
        cp.start()
        api = cp.create_admin_token()
        bundle = cp.create_bundle(namespace, work / "bundle")
        agent = AgentProcess(
            namespace, cp.agent_url, bundle, cluster.kubeconfig, work / "agent.log"
        )
        agent.start()
        producer = Producer(api, bodies, pace=pace)
        producer.start()
        yield Stream(cp, redis, producer, namespace, namespace, expected)
    finally:
        if producer is not None:
            producer.cancel()
        if agent is not None:
            agent.stop()
        cp.stop()
    intact, said = cp.verify_audit()
    assert intact, said


def test_nothing_accepted_is_lost_when_redis_is_killed_and_the_control_plane_recovers(
    cluster: Cluster, redis_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    """Three outages in a stream of 200 events, each 0.5 s longer than the one before."""
    events = 200
    with streaming(cluster, redis_factory(aof=True), tmp_path, events=events, pace=0.03) as stream:
        for outage in (1, 2, 3):
            stream.producer.wait_for_accepted(outage * events // 4, timeout=60)
            stream.kill_redis()
            time.sleep(outage * 0.5)  # how long Redis stays down after the first 503
            stream.restart_redis()
        stream.check_all_done(cluster.kubeconfig)


def test_an_agent_that_dials_during_a_redis_outage_then_falls_silent_does_not_kill_the_cp(
    cluster: Cluster, redis_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    """An agent tries to register while Redis is down (its registration cannot be stored),
    then hangs (SIGSTOP) for longer than the control plane takes to notice a silent connection,
    Redis still down: the control plane must keep no half-registered connection to watch, or
    at least live through failing to store that its agent is unhealthy."""
    with streaming(cluster, redis_factory(aof=True), tmp_path, events=40, pace=0.1) as stream:
        silent_id = f"{stream.agent_id}-silent"
        silent_bundle = stream.cp.create_bundle(silent_id, tmp_path / "silent-bundle")
        stream.producer.wait_for_accepted(20, timeout=60)
        stream.kill_redis()
        silent = AgentProcess(
            silent_id,
            stream.cp.agent_url,
            silent_bundle,
            cluster.kubeconfig,
            tmp_path / "silent-agent.log",
        )
        try:
            silent.spawn().wait_for(DIAL_FAILED)  # its registration failed: Redis is down
            silent.pause()
            time.sleep(SILENCE_NOTICED + 2.0)  # Redis stays down until then
            assert_alive(stream.cp)
            stream.restart_redis()
            silent.resume()
            assert silent.process is not None
            silent.process.wait_for(CONNECTED_AGAIN)
            stream.check_all_done(cluster.kubeconfig)
            status, record = call(stream.cp.api, "GET", f"/agents/{silent_id}")
            assert (status, record["status"]) == (200, "connected")
        finally:
            silent.stop()
