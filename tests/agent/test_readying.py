"""``wait_ready`` on the ready test bed (controllers, scheduler and KWOK, so Deployments really
roll out): a Deployment completes once available, with progress on the way; one whose pods never
become ready fails at the timeout, or at once when its controller gives up, in the Deployment's
own words; a ConfigMap is ready at once. And a plan's fingerprint survives the rollout: only
status changed."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.agent.conftest import configmap, event, run
from tests.agent.test_drift import plan_of
from tests.bed.controllers import api_client, deployment_json, new_namespace
from tests.bed.kube import Cluster
from tests.test_bed_ready import wait_for
from transporter.agent.kube_runner import KubeRunner
from transporter.kube import KubeTarget
from transporter.kube.readiness import compute
from transporter.protocol.model import EventState, Phase, Readiness, ResourceStatus


@pytest.fixture
async def ready_target(ready_cluster: Cluster) -> AsyncIterator[KubeTarget]:
    async with KubeTarget.connect(ready_cluster.kubeconfig, timeout=10.0) as connected:
        yield connected


@pytest.fixture
def ready_api(ready_cluster: Cluster) -> Iterator[k8s.ApiClient]:
    with api_client(ready_cluster) as made:
        yield made


@pytest.fixture
def ready_namespace(ready_api: k8s.ApiClient) -> str:
    return new_namespace(ready_api, "ready")


async def test_a_deployment_completes_once_available(
    ready_target: KubeTarget, ready_namespace: str
) -> None:
    manifests = (
        configmap("settings", ready_namespace, a="1"),
        deployment_json("web", ready_namespace),
    )
    reports = await run(
        KubeRunner(ready_target), event(*manifests, wait_ready=True, ready_timeout=60)
    )
    final = reports[-1]
    assert final.state is EventState.COMPLETED, final.message
    assert final.resources is not None
    assert [(r.name, r.status, r.ready, r.message) for r in final.resources] == [
        ("settings", ResourceStatus.CREATED, Readiness.CURRENT, "Resource is always ready"),
        ("web", ResourceStatus.CREATED, Readiness.CURRENT, "Deployment is available. Replicas: 1"),
    ]
    waiting = [r for r in reports[:-1] if r.phase is Phase.VERIFYING and r.resources]
    assert waiting, "progress is reported while the Deployment rolls out"
    first = waiting[0]
    assert first.message.startswith("waiting for 1 of 2 objects to be ready: Deployment/web: ")
    assert first.resources is not None
    assert [r.ready for r in first.resources] == [Readiness.CURRENT, Readiness.IN_PROGRESS]
    said = [(r.message, r.resources) for r in waiting]
    assert len(said) == len(set(map(repr, said))), "a report only when something changed"


async def test_a_configmap_is_ready_at_once(ready_target: KubeTarget, ready_namespace: str) -> None:
    reports = await run(
        KubeRunner(ready_target), event(configmap("c", ready_namespace), wait_ready=True)
    )
    assert [(r.state, r.phase) for r in reports] == [
        (EventState.IN_PROGRESS, Phase.VALIDATING),
        (EventState.IN_PROGRESS, Phase.APPLYING),
        (EventState.IN_PROGRESS, Phase.VERIFYING),
        (EventState.COMPLETED, Phase.COMPLETED),
    ]


async def test_pods_that_never_become_ready_fail_at_the_timeout(
    ready_target: KubeTarget, ready_namespace: str
) -> None:
    stuck = deployment_json("stuck", ready_namespace, never_ready=True)
    final = (await run(KubeRunner(ready_target), event(stuck, wait_ready=True, ready_timeout=5)))[
        -1
    ]
    assert final.state is EventState.FAILED
    prefix = "not ready after 5 s: Deployment/stuck: "
    assert final.message.startswith(prefix), final.message
    assert final.resources is not None
    (result,) = final.resources
    assert result.ready is Readiness.IN_PROGRESS
    assert final.message == prefix + result.message
    assert "Deployment does not have minimum availability" in result.message


async def test_a_deployment_past_its_progress_deadline_fails_in_its_own_words(
    ready_target: KubeTarget, ready_namespace: str
) -> None:
    stuck = deployment_json("late", ready_namespace, never_ready=True, progressDeadlineSeconds=2)
    final = (await run(KubeRunner(ready_target), event(stuck, wait_ready=True, ready_timeout=120)))[
        -1
    ]
    assert final.state is EventState.FAILED
    assert final.resources is not None
    (result,) = final.resources
    assert result.ready is Readiness.FAILED
    assert "has timed out progressing" in result.message
    assert final.message == f"not ready: Deployment/late: {result.message}"


async def test_a_plans_fingerprint_survives_a_rollout(
    ready_target: KubeTarget, ready_api: k8s.ApiClient, ready_namespace: str
) -> None:
    manifest = deployment_json("web", ready_namespace)
    apps: Any = k8s.AppsV1Api(ready_api)
    apps.create_namespaced_deployment(ready_namespace, json.loads(manifest))
    expect = await plan_of(ready_target, manifest)  # while it rolls out

    def available() -> bool:
        found = apps.read_namespaced_deployment("web", ready_namespace)
        return compute(ready_api.sanitize_for_serialization(found)).ready  # type: ignore[no-untyped-call]

    wait_for("the Deployment available", available)
    final = (await run(KubeRunner(ready_target), event(manifest, expect=expect)))[-1]
    assert final.state is EventState.COMPLETED, final.message
