"""Our Pod Security Standards against the API server's own PodSecurity admission: for each pod,
the agent's verdict on the pod as the server would store it (a dry run) is the server's own,
word for word, at baseline and at restricted."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
from kubernetes import client as k8s

from tests.bed.kube import Cluster
from tests.bed.rbac import apply_as_admin, read_object
from transporter.agent.policy.podsecurity import Level, check_pod


def container(**security: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": "c", "image": "registry.invalid/app:1"}
    if security:
        spec["securityContext"] = security
    return spec


RESTRICTED_OK = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
PODS: dict[str, dict[str, Any]] = {
    "plain": {"containers": [container()]},
    "restricted-ok": {"containers": [container(**RESTRICTED_OK)]},
    "privileged": {"containers": [container(privileged=True)]},
    "host-namespaces": {"hostPID": True, "hostIPC": True, "containers": [container()]},
    "host-network-port": {
        "hostNetwork": True,
        "containers": [dict(container(), ports=[{"containerPort": 8080}])],
    },
    "host-path": {
        "containers": [container()],
        "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
    },
    "capabilities": {"containers": [container(capabilities={"add": ["SYS_ADMIN", "NET_RAW"]})]},
    "seccomp-unconfined": {
        "securityContext": {"seccompProfile": {"type": "Unconfined"}},
        "containers": [container()],
    },
    "sysctls": {
        "securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]},
        "containers": [container()],
    },
    "selinux": {"containers": [container(seLinuxOptions={"type": "spc_t", "user": "root"})]},
    "root-user": {"containers": [container(**{**RESTRICTED_OK, "runAsUser": 0})]},
    "nfs-volume": {
        "containers": [container(**RESTRICTED_OK)],
        "volumes": [{"name": "n", "nfs": {"server": "10.0.0.1", "path": "/"}}],
    },
    "many-at-once": {
        "hostNetwork": True,
        "hostPID": True,
        "initContainers": [dict(container(privileged=True), name="init")],
        "containers": [container(capabilities={"add": ["ALL"]}, allowPrivilegeEscalation=True)],
        "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
    },
}


def pod(name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def dry_run_create(cluster: Cluster, body: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """The pod as the server would store it, or its refusal's message."""

    def call(api: k8s.ApiClient) -> Any:
        core: Any = k8s.CoreV1Api(api)  # the client takes a dict as the body too
        return core.create_namespaced_pod(
            body["metadata"]["namespace"], body, dry_run="All", _preload_content=False
        )

    try:
        answer = read_object(cluster, call)
    except k8s.ApiException as exc:
        return None, str(json.loads(exc.body or "{}")["message"])
    return json.loads(answer.data), ""


@pytest.fixture(scope="module")
def namespaces(cluster: Cluster) -> dict[str, str]:
    """A namespace that enforces each level, and one that enforces none."""
    made = {"none": "pss-none", "baseline": "pss-baseline", "restricted": "pss-restricted"}
    for level, name in made.items():
        labels = "{}" if level == "none" else f"{{pod-security.kubernetes.io/enforce: {level}}}"
        namespace = (
            f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}, labels: {labels}}}\n"
        )
        # No controller-manager makes the default ServiceAccount on the test bed.
        account = "apiVersion: v1\nkind: ServiceAccount\n"
        account += f"metadata: {{name: default, namespace: {name}}}\n"
        for manifest in (namespace, account):
            try:
                apply_as_admin(cluster, manifest)
            except k8s.ApiException as exc:
                if exc.status != 409:
                    raise
    return made


@pytest.mark.parametrize("level", [Level.BASELINE, Level.RESTRICTED])
@pytest.mark.parametrize("name", sorted(PODS))
async def test_our_verdict_is_the_api_servers(
    cluster: Cluster, namespaces: dict[str, str], name: str, level: Level
) -> None:
    spec = PODS[name]
    stored, problem = await trio.to_thread.run_sync(
        dry_run_create, cluster, pod(name, namespaces["none"], spec)
    )
    assert stored is not None, problem
    ours = check_pod(stored["metadata"], stored["spec"], level)
    _, refusal = await trio.to_thread.run_sync(
        dry_run_create, cluster, pod(name, namespaces[level.value], spec)
    )
    prefix = f'pods "{name}" is forbidden: violates PodSecurity "{level.value}:latest": '
    if not ours:
        assert refusal == "", refusal
    else:
        assert refusal == prefix + ", ".join(str(v) for v in ours)
