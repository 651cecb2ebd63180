"""Readiness by kstatus's rules: a table per kind of hand-written objects (kstatus's documented
cases), hostile input, and real objects on the ready test bed (controllers, scheduler, kwok)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.bed.controllers import NEVER_READY_LABEL, api_client, new_namespace
from tests.bed.kube import Cluster
from tests.test_bed_ready import wait_for
from transporter.kube.readiness import (
    MAX_ITEMS,
    MAX_MESSAGE,
    Readiness,
    ReadinessInputError,
    Status,
    compute,
)

CURRENT, IN_PROGRESS, FAILED, UNKNOWN = (
    Status.CURRENT,
    Status.IN_PROGRESS,
    Status.FAILED,
    Status.UNKNOWN,
)


def obj(api_version: str, kind: str, *, generation: int = 1, **parts: Any) -> dict[str, Any]:
    """An object as the API server returns it: name, generation, and the parts given."""
    meta = {"name": "x", "generation": generation, **parts.pop("metadata", {})}
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, **parts}


def cond(kind: str, status: str, reason: str = "", message: str = "") -> dict[str, str]:
    return {"type": kind, "status": status, "reason": reason, "message": message}


def check(found: Readiness, status: Status, message: str) -> None:
    assert (found.status, found.message) == (status, message)


def deploy(spec: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    return obj("apps/v1", "Deployment", spec=spec, status={"observedGeneration": 1, **status})


ROLLED = {"replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2}
AVAILABLE = cond("Available", "True", "MinimumReplicasAvailable")
PROGRESSED = cond("Progressing", "True", "NewReplicaSetAvailable")
TIMED_OUT = 'ReplicaSet "web-5d8" has timed out progressing.'
DEPLOYMENTS = {
    "no status yet": (deploy({"replicas": 2}, {}), IN_PROGRESS, "Replicas: 0/2"),
    "default one replica": (deploy({}, {"replicas": 0}), IN_PROGRESS, "Replicas: 0/1"),
    "not updated": (
        deploy({"replicas": 2}, {**ROLLED, "updatedReplicas": 1}),
        IN_PROGRESS,
        "Updated: 1/2",
    ),
    "old pods terminating": (
        deploy({"replicas": 2}, {**ROLLED, "replicas": 3}),
        IN_PROGRESS,
        "Pending termination: 1",
    ),
    "not available": (
        deploy({"replicas": 2}, {**ROLLED, "availableReplicas": 1}),
        IN_PROGRESS,
        "Available: 1/2",
    ),
    "not ready": (
        deploy({"replicas": 2}, {**ROLLED, "readyReplicas": 1}),
        IN_PROGRESS,
        "Ready: 1/2",
    ),
    "deadline set, still progressing": (
        deploy(
            {"replicas": 2, "progressDeadlineSeconds": 600},
            {**ROLLED, "conditions": [AVAILABLE, cond("Progressing", "True", "ReplicaSetUpdated")]},
        ),
        IN_PROGRESS,
        "ReplicaSet not Available",
    ),
    "no Available condition": (
        deploy({"replicas": 2}, {**ROLLED, "conditions": [PROGRESSED]}),
        IN_PROGRESS,
        "Deployment not Available",
    ),
    "available": (
        deploy(
            {"replicas": 2, "progressDeadlineSeconds": 600},
            {**ROLLED, "conditions": [AVAILABLE, PROGRESSED]},
        ),
        CURRENT,
        "Deployment is available. Replicas: 2",
    ),
    "progress deadline exceeded": (
        deploy(
            {"replicas": 2, "progressDeadlineSeconds": 3},
            {
                "replicas": 2,
                "conditions": [cond("Progressing", "False", "ProgressDeadlineExceeded", TIMED_OUT)],
            },
        ),
        FAILED,
        TIMED_OUT,
    ),
    "controller behind the spec": (
        obj(
            "apps/v1",
            "Deployment",
            generation=3,
            spec={},
            status={**ROLLED, "observedGeneration": 2},
        ),
        IN_PROGRESS,
        "Deployment generation is 3, but latest observed generation is 2",
    ),
    "being deleted": (
        deploy({}, ROLLED) | {"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}},
        IN_PROGRESS,
        "Resource scheduled for deletion",
    ),
}


def rs(spec: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    return obj("apps/v1", "ReplicaSet", spec=spec, status={"observedGeneration": 1, **status})


RS_UP = {"replicas": 2, "fullyLabeledReplicas": 2, "readyReplicas": 2, "availableReplicas": 2}
REPLICASETS = {
    "replica failure": (
        rs(
            {"replicas": 2},
            {**RS_UP, "conditions": [cond("ReplicaFailure", "True", "FailedCreate", "quota")]},
        ),
        IN_PROGRESS,
        "Replica Failure condition. Check Pods: quota",
    ),
    "not labelled": (
        rs({"replicas": 2}, {**RS_UP, "fullyLabeledReplicas": 1}),
        IN_PROGRESS,
        "Labelled: 1/2",
    ),
    "not available": (
        rs({"replicas": 2}, {**RS_UP, "availableReplicas": 0}),
        IN_PROGRESS,
        "Available: 0/2",
    ),
    "not ready": (rs({"replicas": 2}, {**RS_UP, "readyReplicas": 1}), IN_PROGRESS, "Ready: 1/2"),
    "extra": (rs({"replicas": 2}, {**RS_UP, "replicas": 4}), IN_PROGRESS, "Pending termination: 2"),
    "available": (rs({"replicas": 2}, RS_UP), CURRENT, "ReplicaSet is available. Replicas: 2"),
}


def sts(spec: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    return obj("apps/v1", "StatefulSet", spec=spec, status={"observedGeneration": 1, **status})


STS_UP = {
    "replicas": 3,
    "readyReplicas": 3,
    "currentReplicas": 3,
    "updatedReplicas": 3,
    "currentRevision": "db-1",
    "updateRevision": "db-1",
}
PARTITIONED = {
    "replicas": 3,
    "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}},
}
STATEFULSETS = {
    "on delete": (
        sts({"replicas": 3, "updateStrategy": {"type": "OnDelete"}}, {}),
        CURRENT,
        "StatefulSet is using the ondelete update strategy",
    ),
    "too few": (sts({"replicas": 3}, {**STS_UP, "replicas": 1}), IN_PROGRESS, "Replicas: 1/3"),
    "not ready": (sts({"replicas": 3}, {**STS_UP, "readyReplicas": 2}), IN_PROGRESS, "Ready: 2/3"),
    "extra": (
        sts({"replicas": 3}, {**STS_UP, "replicas": 4}),
        IN_PROGRESS,
        "Pending termination: 1",
    ),
    "partition rolling": (
        sts(PARTITIONED, {**STS_UP, "updatedReplicas": 1}),
        IN_PROGRESS,
        "updated: 1/2",
    ),
    "partition done": (
        sts(PARTITIONED, {**STS_UP, "updatedReplicas": 2, "updateRevision": "db-2"}),
        CURRENT,
        "Partition rollout complete. updated: 2",
    ),
    "partition 0, the default, is none": (
        sts(
            PARTITIONED | {"updateStrategy": {"rollingUpdate": {"partition": 0}}},
            {**STS_UP, "updateRevision": "db-2"},
        ),
        IN_PROGRESS,
        "Waiting for updated revision to match current",
    ),
    "not current": (
        sts({"replicas": 3}, {**STS_UP, "currentReplicas": 2}),
        IN_PROGRESS,
        "current: 2/3",
    ),
    "revision mismatch": (
        sts({"replicas": 3}, {**STS_UP, "updateRevision": "db-2"}),
        IN_PROGRESS,
        "Waiting for updated revision to match current",
    ),
    "ready": (
        sts({"replicas": 3}, STS_UP),
        CURRENT,
        "All replicas scheduled as expected. Replicas: 3",
    ),
}


def ds(status: dict[str, Any]) -> dict[str, Any]:
    return obj("apps/v1", "DaemonSet", spec={}, status=status)


DS_UP = {
    "observedGeneration": 1,
    "desiredNumberScheduled": 2,
    "currentNumberScheduled": 2,
    "updatedNumberScheduled": 2,
    "numberAvailable": 2,
    "numberReady": 2,
}
DAEMONSETS = {
    "not observed": (ds({}), IN_PROGRESS, "DaemonSet status.observedGeneration not found"),
    "no generation": (
        {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {}, "status": DS_UP},
        IN_PROGRESS,
        "DaemonSet metadata.generation not found",
    ),
    "no desired": (
        ds({"observedGeneration": 1}),
        IN_PROGRESS,
        "Missing .status.desiredNumberScheduled",
    ),
    "not current": (ds({**DS_UP, "currentNumberScheduled": 1}), IN_PROGRESS, "Current: 1/2"),
    "not updated": (ds({**DS_UP, "updatedNumberScheduled": 0}), IN_PROGRESS, "Updated: 0/2"),
    "not available": (ds({**DS_UP, "numberAvailable": 1}), IN_PROGRESS, "Available: 1/2"),
    "not ready": (ds({**DS_UP, "numberReady": 1}), IN_PROGRESS, "Ready: 1/2"),
    "ready": (ds(DS_UP), CURRENT, "All replicas scheduled as expected. Replicas: 2"),
    "no nodes": (
        ds({**DS_UP, "desiredNumberScheduled": 0}),
        CURRENT,
        "All replicas scheduled as expected. Replicas: 0",
    ),
}


def batch(spec: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    return obj("batch/v1", "Job", spec=spec, status=status)


JOBS = {
    "not started": (batch({}, {}), IN_PROGRESS, "Job not started"),
    "running": (
        batch(
            {"completions": 3}, {"startTime": "2026-01-01T00:00:00Z", "active": 1, "succeeded": 1}
        ),
        IN_PROGRESS,
        "Job in progress. success: 1, active: 1, failed: 0",
    ),
    "complete": (
        batch({"completions": 3}, {"succeeded": 3, "conditions": [cond("Complete", "True")]}),
        CURRENT,
        "Job Completed. succeeded: 3/3",
    ),
    "failed": (
        batch(
            {},
            {
                "failed": 7,
                "conditions": [
                    cond(
                        "Failed",
                        "True",
                        "BackoffLimitExceeded",
                        "Job has reached the specified backoff limit",
                    )
                ],
            },
        ),
        FAILED,
        "Job has reached the specified backoff limit",
    ),
    "failed without a message": (
        batch({"parallelism": 2}, {"failed": 2, "conditions": [cond("Failed", "True")]}),
        FAILED,
        "Job Failed. failed: 2/2",
    ),
    "suspended": (
        batch({}, {"conditions": [cond("Suspended", "True")]}),
        CURRENT,
        "Job is suspended",
    ),
    "complete is false": (
        batch({}, {"conditions": [cond("Complete", "False")]}),
        IN_PROGRESS,
        "Job not started",
    ),
}


def pod(status: dict[str, Any]) -> dict[str, Any]:
    return obj("v1", "Pod", spec={}, status=status)


LOOPING = {"name": "app", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
PODS = {
    "no phase": (pod({}), IN_PROGRESS, "Pod phase not available"),
    "pending": (pod({"phase": "Pending"}), IN_PROGRESS, "Pod is in the Pending phase"),
    "unschedulable": (
        pod(
            {
                "phase": "Pending",
                "conditions": [
                    cond("PodScheduled", "False", "Unschedulable", "0/1 nodes are available")
                ],
            }
        ),
        IN_PROGRESS,
        "Pod could not be scheduled: 0/1 nodes are available",
    ),
    "running, not ready": (
        pod({"phase": "Running", "conditions": [cond("Ready", "False", "ContainersNotReady")]}),
        IN_PROGRESS,
        "Pod is running but is not Ready",
    ),
    "crash looping": (
        pod(
            {
                "phase": "Running",
                "containerStatuses": [LOOPING, {"name": "side", "state": {"running": {}}}],
            }
        ),
        FAILED,
        "Containers in CrashLoop state: app",
    ),
    "ready": (
        pod({"phase": "Running", "conditions": [cond("Ready", "True")]}),
        CURRENT,
        "Pod is Ready",
    ),
    "succeeded": (pod({"phase": "Succeeded"}), CURRENT, "Pod has completed successfully"),
    "failed": (
        pod({"phase": "Failed", "message": "OOMKilled"}),
        FAILED,
        "Pod has completed, but not successfully: OOMKilled",
    ),
    "an unknown phase": (pod({"phase": "Lost"}), UNKNOWN, "Pod phase Lost is not known"),
}

SMALL_KINDS = {
    "pvc pending": (
        obj("v1", "PersistentVolumeClaim", status={"phase": "Pending"}),
        IN_PROGRESS,
        "PVC is not Bound. phase: Pending",
    ),
    "pvc no status": (
        obj("v1", "PersistentVolumeClaim"),
        IN_PROGRESS,
        "PVC is not Bound. phase: unknown",
    ),
    "pvc bound": (
        obj("v1", "PersistentVolumeClaim", status={"phase": "Bound"}),
        CURRENT,
        "PVC is Bound",
    ),
    "service": (obj("v1", "Service", spec={"clusterIP": "10.0.0.1"}), CURRENT, "Service is ready"),
    "load balancer pending": (
        obj("v1", "Service", spec={"type": "LoadBalancer"}, status={"loadBalancer": {}}),
        IN_PROGRESS,
        "Waiting for a load balancer ingress. Service type: LoadBalancer",
    ),
    "load balancer": (
        obj(
            "v1",
            "Service",
            spec={"type": "LoadBalancer"},
            status={"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}},
        ),
        CURRENT,
        "Service is ready",
    ),
    "crd installing": (
        obj(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            status={"conditions": [cond("Established", "False", "Installing")]},
        ),
        IN_PROGRESS,
        "Install in progress",
    ),
    "crd names refused": (
        obj(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            status={
                "conditions": [
                    cond("NamesAccepted", "False", "MultipleNames", '"widgets" is already in use')
                ]
            },
        ),
        FAILED,
        '"widgets" is already in use',
    ),
    "crd not established": (
        obj(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            status={"conditions": [cond("Established", "False", "Odd", "broken")]},
        ),
        FAILED,
        "broken",
    ),
    "crd established": (
        obj(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            status={"conditions": [cond("NamesAccepted", "True"), cond("Established", "True")]},
        ),
        CURRENT,
        "CRD is established",
    ),
    "pdb not observed": (
        obj("policy/v1", "PodDisruptionBudget", status={}),
        IN_PROGRESS,
        "PodDisruptionBudget status.observedGeneration not found",
    ),
    "pdb": (
        obj(
            "policy/v1",
            "PodDisruptionBudget",
            status={"observedGeneration": 1, "disruptionsAllowed": 0},
        ),
        CURRENT,
        "AllowedDisruptions has been computed.",
    ),
    "configmap": (obj("v1", "ConfigMap", data={"a": "b"}), CURRENT, "Resource is always ready"),
    "secret": (obj("v1", "Secret"), CURRENT, "Resource is always ready"),
    "cronjob": (
        obj("batch/v1", "CronJob", status={"observedGeneration": 1}),
        CURRENT,
        "Resource is always ready",
    ),
}

WIDGET = "example.com/v1"
GENERIC = {
    "no conditions": (obj(WIDGET, "Widget", spec={}), CURRENT, "Resource is current"),
    "ready": (
        obj(WIDGET, "Widget", status={"conditions": [cond("Ready", "True", "Done", "all good")]}),
        CURRENT,
        "Ready: all good",
    ),
    "not ready": (
        obj(
            WIDGET,
            "Widget",
            status={"conditions": [cond("Ready", "False", "Waiting", "waiting for the database")]},
        ),
        IN_PROGRESS,
        "waiting for the database",
    ),
    "ready unknown, no words": (
        obj(WIDGET, "Widget", status={"conditions": [cond("Ready", "Unknown")]}),
        IN_PROGRESS,
        "Ready is Unknown",
    ),
    "reconciling": (
        obj(
            WIDGET,
            "Widget",
            status={
                "conditions": [
                    cond("Ready", "True"),
                    cond("Reconciling", "True", "Progressing", "scaling up"),
                ]
            },
        ),
        IN_PROGRESS,
        "scaling up",
    ),
    "stalled": (
        obj(
            WIDGET,
            "Widget",
            status={
                "conditions": [cond("Stalled", "True", "BadSpec", "spec.size must be positive")]
            },
        ),
        FAILED,
        "spec.size must be positive",
    ),
    "stalled on a deployment wins over its replicas": (
        deploy({}, {**ROLLED, "conditions": [cond("Stalled", "True", "Odd")]}),
        FAILED,
        "Stalled: Odd",
    ),
    "behind the spec": (
        obj(
            WIDGET,
            "Widget",
            generation=5,
            status={"observedGeneration": 4, "conditions": [cond("Ready", "True")]},
        ),
        IN_PROGRESS,
        "Widget generation is 5, but latest observed generation is 4",
    ),
    "core kind without rules": (
        obj("v1", "Namespace", status={"phase": "Active"}),
        CURRENT,
        "Resource is current",
    ),
    "same kind, other group": (
        obj(WIDGET, "Deployment", spec={"replicas": 3}),
        CURRENT,
        "Resource is current",
    ),
    "legacy group": (
        obj("extensions/v1beta1", "Deployment", spec={"replicas": 3}),
        IN_PROGRESS,
        "Replicas: 0/3",
    ),
}

TABLES = {
    "deployment": DEPLOYMENTS,
    "replicaset": REPLICASETS,
    "statefulset": STATEFULSETS,
    "daemonset": DAEMONSETS,
    "job": JOBS,
    "pod": PODS,
    "small": SMALL_KINDS,
    "generic": GENERIC,
}
CASES = [
    pytest.param(case, status, message, id=f"{table}: {name}")
    for table, cases in TABLES.items()
    for name, (case, status, message) in cases.items()
]


@pytest.mark.parametrize(("case", "status", "message"), CASES)
def test_kstatus_cases(case: dict[str, Any], status: Status, message: str) -> None:
    check(compute(case), status, message)


def test_a_long_message_is_one_bounded_line() -> None:
    told = "first line\nsecond\tline " + "x" * 10_000
    found = compute(
        obj(WIDGET, "Widget", status={"conditions": [cond("Stalled", "True", "R", told)]})
    )
    assert found.status is FAILED
    assert len(found.message) == MAX_MESSAGE
    assert found.message.startswith("first line second line xxx")
    assert found.message.endswith("…")


def test_only_the_first_conditions_are_read() -> None:
    many = [cond(f"C{n}", "True") for n in range(MAX_ITEMS)] + [
        cond("Stalled", "True", "R", "late")
    ]
    assert compute(obj(WIDGET, "Widget", status={"conditions": many})).status is CURRENT


HOSTILE = {
    "not an object": ([], "the object is not a JSON object"),
    "no kind": ({"apiVersion": "v1"}, "kind is missing"),
    "kind not a string": ({"kind": 7}, "kind is not a string"),
    "metadata a list": ({"kind": "Pod", "metadata": []}, "metadata is not a JSON object"),
    "generation a string": (
        {"kind": "Pod", "metadata": {"generation": "1"}},
        "metadata.generation is not an integer",
    ),
    "replicas out of range": (deploy({"replicas": 10**5000}, {}), "spec.replicas is out of range"),
    "replicas a bool": (
        deploy({"replicas": True}, {}),
        "spec.replicas is not an integer",
    ),
    "status a string": ({"kind": "Pod", "status": "Running"}, "status is not a JSON object"),
    "conditions an object": (
        {"kind": "Pod", "status": {"conditions": {"type": "Ready"}}},
        "status.conditions is not a list",
    ),
    "a condition a string": (
        {"kind": "Pod", "status": {"conditions": ["Ready"]}},
        "status.conditions[0] is not a JSON object",
    ),
    "a condition message a number": (
        {"kind": "Pod", "status": {"conditions": [{"type": "Ready", "message": 1}]}},
        "status.conditions[0].message is not a string",
    ),
    "container status a number": (
        pod({"phase": "Running", "containerStatuses": [1]}),
        "status.containerStatuses[0] is not a JSON object",
    ),
    "waiting reason a list": (
        pod(
            {
                "phase": "Running",
                "containerStatuses": [{"name": "a", "state": {"waiting": {"reason": []}}}],
            }
        ),
        "status.containerStatuses[0].state.waiting.reason is not a string",
    ),
    "ingress an object": (
        obj(
            "v1", "Service", spec={"type": "LoadBalancer"}, status={"loadBalancer": {"ingress": {}}}
        ),
        "status.loadBalancer.ingress is not a list",
    ),
}


@pytest.mark.parametrize(("case", "error"), HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_input_is_one_clear_error(case: Any, error: str) -> None:
    with pytest.raises(ReadinessInputError) as raised:
        compute(case)
    assert str(raised.value) == error
    assert isinstance(raised.value, ValueError)


def test_deep_and_odd_json_elsewhere_is_not_read() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(10_000):
        node["a"] = {}
        node = node["a"]
    found = compute(obj("v1", "ConfigMap", data=deep, spec=[1, 2], status={"odd": None}))
    assert found.ready


# --- real objects on the ready test bed ------------------------------------------------------


@pytest.fixture
def api(ready_cluster: Cluster) -> Iterator[k8s.ApiClient]:
    with api_client(ready_cluster) as made:
        yield made


@pytest.fixture
def namespace(api: k8s.ApiClient) -> str:
    return new_namespace(api, "readiness")


def as_json(api: k8s.ApiClient, model: Any) -> dict[str, Any]:
    """The object as the API server sent it (camelCase JSON), from the client's model."""
    found = api.sanitize_for_serialization(model)  # type: ignore[no-untyped-call]
    assert isinstance(found, dict)
    return found


def settles(api: k8s.ApiClient, read: Callable[[], Any]) -> tuple[Readiness, list[Readiness]]:
    """Readiness read until it is no longer in progress; and every reading before it."""
    seen: list[Readiness] = []

    def probe() -> Readiness | None:
        found = compute(as_json(api, read()))
        if found.status is IN_PROGRESS:
            seen.append(found)
            return None
        return found

    return wait_for("readiness other than in_progress", probe), seen


def workload(kind: str, name: str, replicas: int | None = None, **spec: Any) -> dict[str, Any]:
    labels = spec.pop("labels", {})
    body: dict[str, Any] = {
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name, **labels}},
            "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1"}]},
        },
        **spec,
    }
    if replicas is not None:
        body["replicas"] = replicas
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name}, "spec": body}


def test_a_deployment_is_in_progress_while_rolling_out_then_current(
    api: k8s.ApiClient, namespace: str
) -> None:
    apps: Any = k8s.AppsV1Api(api)
    created = apps.create_namespaced_deployment(namespace, workload("Deployment", "web", 2))
    check(compute(as_json(api, created)), IN_PROGRESS, "Replicas: 0/2")
    final, before = settles(api, lambda: apps.read_namespaced_deployment("web", namespace))
    check(final, CURRENT, "Deployment is available. Replicas: 2")
    assert all(seen.status is IN_PROGRESS for seen in before)
    done = as_json(api, apps.read_namespaced_deployment("web", namespace))
    assert done["status"]["availableReplicas"] == 2


def test_a_deployment_of_never_ready_pods_fails_with_the_controllers_message(
    api: k8s.ApiClient, namespace: str
) -> None:
    apps: Any = k8s.AppsV1Api(api)
    stuck = workload(
        "Deployment", "stuck", 2, labels={NEVER_READY_LABEL: "true"}, progressDeadlineSeconds=3
    )
    apps.create_namespaced_deployment(namespace, stuck)
    final, before = settles(api, lambda: apps.read_namespaced_deployment("stuck", namespace))
    body = as_json(api, apps.read_namespaced_deployment("stuck", namespace))
    [progressing] = [c for c in body["status"]["conditions"] if c["type"] == "Progressing"]
    assert progressing["reason"] == "ProgressDeadlineExceeded"
    check(final, FAILED, progressing["message"])
    assert "has timed out progressing" in final.message
    assert before, "a Deployment of pods that never become ready is first in progress"


def test_a_job_ends_current(api: k8s.ApiClient, namespace: str) -> None:
    jobs: Any = k8s.BatchV1Api(api)
    template = {
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "once", "image": "registry.invalid/once:1"}],
        }
    }
    manifest = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "once"},
        "spec": {"template": template},
    }
    created = jobs.create_namespaced_job(namespace, manifest)
    check(compute(as_json(api, created)), IN_PROGRESS, "Job not started")
    final, _ = settles(api, lambda: jobs.read_namespaced_job("once", namespace))
    check(final, CURRENT, "Job Completed. succeeded: 1/1")


def test_a_statefulset_and_a_daemonset_end_current(api: k8s.ApiClient, namespace: str) -> None:
    apps: Any = k8s.AppsV1Api(api)
    db = apps.create_namespaced_stateful_set(
        namespace, workload("StatefulSet", "db", 2, serviceName="db")
    )
    agent = apps.create_namespaced_daemon_set(namespace, workload("DaemonSet", "agent"))
    assert compute(as_json(api, db)).status is IN_PROGRESS
    check(
        compute(as_json(api, agent)), IN_PROGRESS, "DaemonSet status.observedGeneration not found"
    )
    final, _ = settles(api, lambda: apps.read_namespaced_stateful_set("db", namespace))
    check(final, CURRENT, "All replicas scheduled as expected. Replicas: 2")
    final, _ = settles(api, lambda: apps.read_namespaced_daemon_set("agent", namespace))
    check(final, CURRENT, "All replicas scheduled as expected. Replicas: 1")
