"""An API server that is unavailable, slow, overloaded or broken for a while, mid-event.

The real kube-apiserver of the session sits behind a :class:`FaultFront` (HTTP: answers 429s and
503s in its place, or holds requests) or a :class:`Relay` (TCP: resets connections). Policies
are short here so that every test takes a second or two; the defaults are in
``test_retry_policy.py``.
"""

from __future__ import annotations

import email.utils
import itertools
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from tests.bed.front import FaultFront, pointed_at
from tests.bed.kube import Cluster
from tests.bed.relay import Relay
from tests.bed.sink import RecordingSink
from transporter.agent.kube_runner import KubeRunner
from transporter.agent.worker import Reporter
from transporter.kube import KubeTarget, KubeUnavailable, RetryPolicy
from transporter.protocol.model import Event, EventState, K8sPayload, Phase, ResourceStatus

SHORT = RetryPolicy(
    attempts=4, budget=5.0, first_delay=0.05, max_delay=0.2, jitter=0.2, max_retry_after=3.0
)
"""Four tries within 0.35 s unless the server asks for more (3 s at most)."""
OUTAGE = RetryPolicy(attempts=100, budget=20.0, first_delay=0.05, max_delay=0.2)
"""Keeps trying every 0.2 s for a while: long enough for a test to bring the server back."""
UNAVAILABLE_503 = "the server is currently unable to handle the request"


def configmap(name: str) -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: default}}\n"


@pytest.fixture
async def front(cluster: Cluster) -> AsyncIterator[FaultFront]:
    front = FaultFront(cluster)
    async with trio.open_nursery() as nursery:
        await nursery.start(front.serve)
        yield front
        nursery.cancel_scope.cancel()


@pytest.fixture
async def relay(cluster: Cluster) -> AsyncIterator[Relay]:
    relay = Relay(upstream=int(cluster.server.rsplit(":", 1)[1]))
    async with trio.open_nursery() as nursery:
        await nursery.start(relay.serve)
        yield relay
        nursery.cancel_scope.cancel()


async def apply(target: KubeTarget, *manifests: str) -> list[ResourceStatus]:
    plan = await target.plan(manifests)
    return [result.status for result in await target.verify(await target.apply(plan))]


async def test_429s_are_retried_no_sooner_than_retry_after_asks(
    front: FaultFront, tmp_path: Path, unique: str
) -> None:
    front.answer(429, times=2, method="PATCH", retry_after="1")
    async with KubeTarget.connect(front.kubeconfig(tmp_path), timeout=5.0, retry=SHORT) as target:
        assert await apply(target, configmap(f"busy-{unique}")) == [ResourceStatus.CREATED]
    patches = front.requests("PATCH")
    assert [(p.status, p.faked) for p in patches] == [(429, True), (429, True), (201, False)]
    for refused, retried in itertools.pairwise(patches):
        assert refused.answered is not None
        assert retried.arrived - refused.answered >= 1.0  # SHORT alone would wait 0.05 s


async def test_retry_after_as_an_http_date_is_honoured(
    front: FaultFront, tmp_path: Path, unique: str
) -> None:
    front.answer(
        503,
        times=1,
        method="PATCH",
        retry_after=lambda: email.utils.formatdate(time.time() + 2, usegmt=True),
    )
    async with KubeTarget.connect(front.kubeconfig(tmp_path), timeout=5.0, retry=SHORT) as target:
        assert await apply(target, configmap(f"dated-{unique}")) == [ResourceStatus.CREATED]
    refused, retried = front.requests("PATCH")
    assert refused.status == 503 and refused.retry_after is not None
    asked = email.utils.parsedate_to_datetime(refused.retry_after).timestamp()
    assert retried.arrived_wall >= asked  # not before the date it named


async def test_a_server_that_stays_unavailable_fails_with_its_answer_and_the_tries(
    front: FaultFront, tmp_path: Path, unique: str
) -> None:
    front.answer(503, method="PATCH")
    async with KubeTarget.connect(front.kubeconfig(tmp_path), timeout=5.0, retry=SHORT) as target:
        plan = await target.plan([configmap(f"down-{unique}")])
        with pytest.raises(KubeUnavailable) as caught:
            await target.apply(plan)
    assert re.fullmatch(
        rf"the API server answered 503: {UNAVAILABLE_503} \(gave up after 4 attempts over \S+ s\)",
        str(caught.value),
    )
    assert len(front.requests("PATCH")) == SHORT.attempts


async def test_a_retry_after_longer_than_we_wait_fails_at_once_saying_so(
    front: FaultFront, tmp_path: Path, unique: str
) -> None:
    front.answer(429, method="PATCH", retry_after="3600")
    async with KubeTarget.connect(front.kubeconfig(tmp_path), timeout=5.0, retry=SHORT) as target:
        plan = await target.plan([configmap(f"hostile-{unique}")])
        start = trio.current_time()
        with pytest.raises(KubeUnavailable) as caught:
            await target.apply(plan)
        assert trio.current_time() - start < 2.0
    assert re.fullmatch(
        r"the API server answered 429: Too many requests, please try again later\."
        r" \(gave up after 1 attempt over \S+ s:"
        r" it asked us to retry after 3600 s, longer than the 3\.0 s we wait\)",
        str(caught.value),
    )
    assert len(front.requests("PATCH")) == 1


async def test_an_unreachable_server_back_within_the_budget_completes_the_apply(
    cluster: Cluster, relay: Relay, tmp_path: Path, unique: str
) -> None:
    kubeconfig = pointed_at(cluster, relay.server, tmp_path)
    async with KubeTarget.connect(kubeconfig, timeout=5.0, retry=OUTAGE) as target:
        relay.refuse()
        results: list[ResourceStatus] = []

        async def run() -> None:
            results.extend(await apply(target, configmap(f"outage-{unique}")))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run)
            await relay.wait_refused(3)  # tried, failed and tried again: the server is away
            relay.restore()
    assert results == [ResourceStatus.CREATED]


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        (  # 422: refused by validation
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Not_A_Name, namespace: default}\n",
            r'ConfigMap "Not_A_Name" is invalid: metadata.name: Invalid value: "Not_A_Name": .*',
        ),
        (  # 500 without a reason: server-side apply could not type the object
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: typo, namespace: default}\n"
            "spec: {replicas: three}\n",
            r".*\.spec\.replicas: expected numeric \(int or float\), got string.*",
        ),
    ],
    ids=["invalid-name", "wrong-type"],
)
async def test_a_refused_object_fails_at_once_with_one_request(
    front: FaultFront, tmp_path: Path, manifest: str, expected: str
) -> None:
    async with KubeTarget.connect(front.kubeconfig(tmp_path), timeout=5.0, retry=SHORT) as target:
        plan = await target.plan([manifest])
        [applied] = await target.apply(plan)
        [result] = await target.verify([applied])
    assert result.status is ResourceStatus.FAILED
    assert re.fullmatch(expected, result.message)
    assert "gave up" not in result.message
    assert len(front.requests("PATCH")) == 1


async def test_an_answer_slower_than_the_request_timeout_is_asked_again(
    front: FaultFront, tmp_path: Path, unique: str
) -> None:
    front.delay(10.0, method="PATCH")  # held far past the timeout, then forwarded
    async with KubeTarget.connect(front.kubeconfig(tmp_path), timeout=1.0, retry=SHORT) as target:
        start = trio.current_time()
        assert await apply(target, configmap(f"slow-{unique}")) == [ResourceStatus.CREATED]
        assert trio.current_time() - start < 5.0  # did not wait for the slow answer
    slow, retried = front.requests("PATCH")
    assert slow.answered is None  # we had stopped listening before it came
    assert retried.status == 201  # created


def event(event_id: str, *manifests: str) -> Event:
    return Event(
        id=event_id, target_agent="a", payload=K8sPayload(manifests), ttl=60, created_at=0.0
    )


async def test_an_event_on_an_unavailable_cluster_fails_saying_why(
    front: FaultFront, tmp_path: Path, unique: str
) -> None:
    front.answer(503, method="PATCH")
    sink = RecordingSink()
    async with KubeTarget.connect(front.kubeconfig(tmp_path), timeout=5.0, retry=SHORT) as target:
        await KubeRunner(target)(event("e1", configmap(f"never-{unique}")), Reporter("e1", sink))
    last = sink.reports[-1]
    assert (last.state, last.phase) == (EventState.FAILED, Phase.FAILED)
    assert re.fullmatch(
        rf"cluster unavailable: the API server answered 503: {UNAVAILABLE_503}"
        r" \(gave up after 4 attempts over \S+ s\)",
        last.message,
    )


async def test_an_event_through_an_overloaded_cluster_completes(
    front: FaultFront, tmp_path: Path, unique: str
) -> None:
    sink = RecordingSink()
    async with KubeTarget.connect(front.kubeconfig(tmp_path), timeout=5.0, retry=SHORT) as target:
        front.answer(429, times=2, retry_after="0")  # whatever comes next: discovery, GET ...
        await KubeRunner(target)(event("e2", configmap(f"later-{unique}")), Reporter("e2", sink))
    last = sink.reports[-1]
    assert (last.state, last.message) == (EventState.COMPLETED, "1 created")
    assert sum(seen.faked for seen in front.seen) == 2
