"""The agent's policy against a real API server: a refused event leaves the cluster untouched."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client as k8s

from tests.bed.harness import Agent, ControlPlane, read, statuses, submit_and_wait
from tests.bed.kube import Cluster
from tests.bed.manifests import configmap_yaml, event_body, unique
from transporter.agent.policy import NOT_APPLIED, load_policy
from transporter.protocol.model import EventState, Phase, ResourceStatus


def cluster_admin_binding_yaml(name: str) -> str:
    return f"""apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {name}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: cluster-admin
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: User
  name: {name}-user
"""


async def read_configmap(cluster: Cluster, name: str, namespace: str = "default") -> Any:
    return await read(
        cluster, lambda api: k8s.CoreV1Api(api).read_namespaced_config_map(name, namespace)
    )


async def read_binding(cluster: Cluster, name: str) -> Any:
    return await read(
        cluster, lambda api: k8s.RbacAuthorizationV1Api(api).read_cluster_role_binding(name)
    )


async def test_a_binding_to_cluster_admin_is_refused_and_nothing_is_applied(
    cp: ControlPlane, make_agent: Callable[..., Agent], cluster: Cluster
) -> None:
    agent = make_agent(cluster)
    await agent.start(cp.agent_url)
    cm, crb = unique("cm"), unique("crb")
    # The ConfigMap comes first: it would be applied first, were the event not refused whole.
    manifests = (configmap_yaml(cm, None, colour="blue"), cluster_admin_binding_yaml(crb))
    record = await submit_and_wait(cp, event_body(agent.agent_id, *manifests))
    assert record.state is EventState.FAILED
    assert record.message == (
        f"refused by agent policy: ClusterRoleBinding {crb}:"
        " binds ClusterRole cluster-admin (rule cluster-admin)"
    )
    assert statuses(record) == {
        ("ConfigMap", cm): ResourceStatus.FAILED,
        ("ClusterRoleBinding", crb): ResourceStatus.FAILED,
    }
    messages = {r.kind: r.message for r in record.resources}
    assert messages == {
        "ConfigMap": NOT_APPLIED,
        "ClusterRoleBinding": (
            "refused by agent policy: binds ClusterRole cluster-admin (rule cluster-admin)"
        ),
    }
    phases = [entry.phase for entry in record.timeline if entry.phase]
    assert Phase.APPLYING not in phases
    assert phases[-1] is Phase.FAILED
    assert await read_configmap(cluster, cm) is None
    assert await read_binding(cluster, crb) is None


async def test_a_policy_file_that_allows_cluster_admin_lets_it_be_applied(
    cp: ControlPlane, make_agent: Callable[..., Agent], cluster: Cluster, tmp_path: Path
) -> None:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(
        "kinds: [core/ConfigMap, rbac.authorization.k8s.io/*]\n"
        "namespaces: [default]\n"
        "allow: [cluster-admin]\n"
    )
    agent = make_agent(cluster, policy=load_policy(policy_file))
    await agent.start(cp.agent_url)
    cm, crb = unique("cm"), unique("crb")
    manifests = (configmap_yaml(cm, None, colour="green"), cluster_admin_binding_yaml(crb))
    record = await submit_and_wait(cp, event_body(agent.agent_id, *manifests))
    assert record.state is EventState.COMPLETED, record.message
    assert statuses(record) == {
        ("ConfigMap", cm): ResourceStatus.CREATED,
        ("ClusterRoleBinding", crb): ResourceStatus.CREATED,
    }
    binding = await read_binding(cluster, crb)
    assert binding is not None
    assert binding.role_ref.name == "cluster-admin"
    assert await read_configmap(cluster, cm) is not None

    # The same policy still refuses what its kinds and namespaces leave out.
    other = await submit_and_wait(
        cp, event_body(agent.agent_id, configmap_yaml(unique("cm"), "elsewhere"))
    )
    assert other.state is EventState.FAILED
    assert "(rule namespaces)" in other.message


async def test_deleting_in_kube_system_is_refused_by_default(
    cp: ControlPlane, make_agent: Callable[..., Agent], cluster: Cluster, tmp_path: Path
) -> None:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text("allow: [kube-system]\n")
    trusted = make_agent(cluster, policy=load_policy(policy_file))
    default = make_agent(cluster)
    await trusted.start(cp.agent_url)
    await default.start(cp.agent_url)
    cm = unique("cm")
    manifest = configmap_yaml(cm, "kube-system")
    created = await submit_and_wait(cp, event_body(trusted.agent_id, manifest))
    assert created.state is EventState.COMPLETED, created.message

    body = event_body(default.agent_id, manifest)
    body["payload"]["action"] = "delete"
    refused = await submit_and_wait(cp, body)
    assert refused.state is EventState.FAILED
    assert refused.message == (
        f"refused by agent policy: ConfigMap kube-system/{cm}:"
        " in the namespace kube-system (rule kube-system)"
    )
    assert await read_configmap(cluster, cm, "kube-system") is not None

    body["target_agent"] = trusted.agent_id
    deleted = await submit_and_wait(cp, body)
    assert statuses(deleted) == {("ConfigMap", cm): ResourceStatus.DELETED}
