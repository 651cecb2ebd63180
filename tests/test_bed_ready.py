"""The ready cluster's readiness is real: kube-controller-manager, kube-scheduler and kwok roll a
Deployment out (or really do not), run StatefulSets and DaemonSets, complete Jobs and finish
deleting namespaces. Every wait is on the objects' own status, bounded in time."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from tests.bed.controllers import NEVER_READY_LABEL, api_client, new_namespace
from tests.bed.kube import Cluster

WAIT = 90.0
"""Seconds for a rollout on a loaded 2-core machine (it takes about one)."""


def wait_for[T](what: str, probe: Callable[[], T | None], timeout: float = WAIT) -> T:
    """Poll ``probe`` until it returns something other than None or False."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last is not None and last is not False:
            return last
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout:.0f} s (last seen: {last!r})")


@pytest.fixture
def api(ready_cluster: Cluster) -> Iterator[k8s.ApiClient]:
    with api_client(ready_cluster) as made:
        yield made


@pytest.fixture
def namespace(api: k8s.ApiClient) -> str:
    return new_namespace(api, "ready")


def apps_api(api: k8s.ApiClient) -> Any:
    """AppsV1Api, untyped: the bodies are plain dicts, as the API server takes them."""
    return k8s.AppsV1Api(api)


def pod_template(app: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": app, **(labels or {})}},
        "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1"}]},
    }


def deployment(name: str, replicas: int, **extra: Any) -> dict[str, Any]:
    labels = extra.pop("labels", None)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": pod_template(name, labels),
            **extra,
        },
    }


def condition(obj: Any, kind: str) -> Any:
    for found in (obj.status and obj.status.conditions) or []:
        if found.type == kind:
            return found
    return None


def test_a_deployment_of_two_replicas_becomes_available(api: k8s.ApiClient, namespace: str) -> None:
    apps = apps_api(api)
    apps.create_namespaced_deployment(namespace, deployment("web", 2))

    def available() -> Any:
        got = apps.read_namespaced_deployment("web", namespace)
        up = condition(got, "Available")
        if (
            up is not None
            and up.status == "True"
            and got.status.ready_replicas == 2
            and got.status.observed_generation == got.metadata.generation
        ):
            return got
        return None

    done = wait_for("Deployment web Available with 2 ready replicas", available)
    assert done.status.available_replicas == 2
    assert done.status.updated_replicas == 2
    progressing = condition(done, "Progressing")
    assert progressing.status == "True"
    pods = k8s.CoreV1Api(api).list_namespaced_pod(namespace, label_selector="app=web").items
    assert len(pods) == 2
    for pod in pods:
        assert pod.spec is not None and pod.status is not None
        assert pod.spec.node_name == "kwok-node-0"  # placed by kube-scheduler
        assert pod.status.phase == "Running"  # run by kwok


def test_a_deployment_whose_pods_never_become_ready_stays_unavailable(
    api: k8s.ApiClient, namespace: str
) -> None:
    apps = apps_api(api)
    apps.create_namespaced_deployment(
        namespace,
        deployment("stuck", 2, labels={NEVER_READY_LABEL: "true"}, progressDeadlineSeconds=3),
    )

    def deadline_exceeded() -> Any:
        got = apps.read_namespaced_deployment("stuck", namespace)
        progressing = condition(got, "Progressing")
        if progressing is not None and progressing.status == "False":
            return got
        return None

    stuck = wait_for("Deployment stuck Progressing=False", deadline_exceeded)
    assert condition(stuck, "Progressing").reason == "ProgressDeadlineExceeded"
    available = condition(stuck, "Available")
    assert available.status == "False"
    assert available.reason == "MinimumReplicasUnavailable"
    assert not stuck.status.ready_replicas
    assert not stuck.status.available_replicas
    pods = k8s.CoreV1Api(api).list_namespaced_pod(namespace, label_selector="app=stuck").items
    assert len(pods) == 2
    for pod in pods:  # running, but not ready: as a failing readiness probe leaves them
        assert pod.status is not None
        assert pod.status.phase == "Running"
        ready = condition(pod, "Ready")
        assert ready.status == "False"
        assert ready.reason == "ContainersNotReady"


def test_a_job_completes(api: k8s.ApiClient, namespace: str) -> None:
    batch: Any = k8s.BatchV1Api(api)  # bodies are plain dicts, as the API server takes them
    batch.create_namespaced_job(
        namespace,
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "once"},
            "spec": {
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "once", "image": "registry.invalid/once:1"}],
                    }
                }
            },
        },
    )

    def complete() -> Any:
        got = batch.read_namespaced_job("once", namespace)
        done = condition(got, "Complete")
        return got if done is not None and done.status == "True" else None

    job = wait_for("Job once Complete", complete)
    assert job.status.succeeded == 1
    assert not job.status.failed


def test_a_statefulset_and_a_daemonset_become_ready(api: k8s.ApiClient, namespace: str) -> None:
    apps = apps_api(api)
    apps.create_namespaced_stateful_set(
        namespace,
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "db"},
            "spec": {
                "replicas": 2,
                "serviceName": "db",
                "selector": {"matchLabels": {"app": "db"}},
                "template": pod_template("db"),
            },
        },
    )
    apps.create_namespaced_daemon_set(
        namespace,
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "agent"},
            "spec": {
                "selector": {"matchLabels": {"app": "agent"}},
                "template": pod_template("agent"),
            },
        },
    )

    def statefulset_ready() -> Any:
        got = apps.read_namespaced_stateful_set("db", namespace)
        return got if got.status.ready_replicas == 2 else None

    def daemonset_ready() -> Any:
        got = apps.read_namespaced_daemon_set("agent", namespace)
        status = got.status
        return got if status.desired_number_scheduled == 1 and status.number_ready == 1 else None

    assert wait_for("StatefulSet db 2 ready", statefulset_ready).status.current_replicas == 2
    assert wait_for("DaemonSet agent ready on the one node", daemonset_ready)


def test_a_namespace_with_running_pods_finishes_deleting(
    api: k8s.ApiClient, namespace: str
) -> None:
    apps, core = apps_api(api), k8s.CoreV1Api(api)
    apps.create_namespaced_deployment(namespace, deployment("doomed", 1))
    wait_for(
        "a running pod",
        lambda: any(
            p.status is not None and p.status.phase == "Running"
            for p in core.list_namespaced_pod(namespace, label_selector="app=doomed").items
        ),
    )
    core.delete_namespace(namespace)

    def gone() -> bool:
        try:
            core.read_namespace(namespace)
        except ApiException as exc:
            if exc.status == 404:
                return True
            raise
        return False

    wait_for(f"namespace {namespace} deleted", gone)
