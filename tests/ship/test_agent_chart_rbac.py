"""The agent chart's RBAC is enough, and no more: its ServiceAccount and RBAC (``helm template``)
applied to a real API server for real, and the agent run as in a pod with that ServiceAccount's
token (TokenRequest) and no kubeconfig. With the default values the demo event completes, and
an object the policy lets through but the chart's RBAC does not grant fails with the API
server's own 403, reported for that object; acting as the producer, the agent needs nothing
but impersonation, and the cluster's RBAC judges the producer."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from tests.bed.helm import (
    AGENT_CHART,
    InstalledAgentChart,
    can_i_on,
    in_pod_argv,
    in_pod_environment,
    install_agent_rbac,
    named,
    service_account_folder,
    service_account_token,
)
from tests.bed.kube import REPO, Cluster
from tests.bed.process import Child, started
from tests.bed.rbac import POWERS, Probe, Subject, apply_as_admin, can_i
from tests.bed.roles import (
    AGENT_LISTENING,
    PYTHON_TRANSPORTER,
    REGISTERED,
    RunningCp,
    clean_environment,
    create_bundle,
    running_cp,
    transporter,
)

HELLO = REPO / "examples" / "hello"
DEFAULT = AGENT_CHART / "examples" / "default.yaml"
DEMO_NAMESPACE = "transporter-hello"


def _release() -> str:
    return f"agent-{uuid.uuid4().hex[:8]}"


def _policy_wider_than_the_rbac(chart: InstalledAgentChart, path: Path) -> Path:
    """The chart's policy, with one kind more (core/Service) than its values, and so than its
    RBAC: an operator who edited the ConfigMap by hand. The agent lets such an object through
    and tries; the API server must refuse it."""
    (config_map,) = named(chart.objects, "ConfigMap")
    policy = yaml.safe_load(config_map["data"]["policy.yaml"])
    assert "core/Service" not in policy["kinds"]
    policy["kinds"].append("core/Service")
    path.write_text(yaml.safe_dump(policy))
    return path


def _outside_the_rbac(folder: Path, name: str) -> Path:
    """An event: a ConfigMap the chart grants, and a Service it does not, in the demo's
    namespace."""
    folder.mkdir()
    (folder / "01-configmap.yaml").write_text(
        f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace:"
        f" {DEMO_NAMESPACE}}}\ndata: {{k: v}}\n"
    )
    (folder / "02-service.yaml").write_text(
        f"apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace:"
        f" {DEMO_NAMESPACE}}}\nspec: {{ports: [{{port: 80}}], selector: {{app: hello}}}}\n"
    )
    return folder


@contextmanager
def _agent_in_pod(
    cluster: Cluster, chart: InstalledAgentChart, cp: RunningCp, folder: Path, *flags: str
) -> Iterator[tuple[str, Child]]:
    """``transporter agent`` as in a pod of the chart: its ServiceAccount's token, the
    cluster's CA and its namespace where a pod has them, no kubeconfig. Yields its id."""
    token = service_account_token(cluster, chart.namespace, chart.account)
    account = service_account_folder(cluster, folder / "serviceaccount", chart.namespace, token)
    found = AGENT_LISTENING.search(cp.output)
    assert found is not None, cp.output
    agent_id = f"chart-{chart.namespace}"
    bundle = create_bundle(folder / "cp", agent_id, folder / "bundle")
    argv = [*PYTHON_TRANSPORTER, "agent", "--bundle", str(bundle), "--cp-url", found.group(1)]
    env = in_pod_environment(cluster, clean_environment(), folder / "home")
    with started(in_pod_argv(account, [*argv, *flags]), REGISTERED, env=env) as (agent, _):
        yield agent_id, agent
    assert "Traceback" not in agent.output
    assert f"(namespace {chart.namespace})" in agent.output  # its journal, where its account is


def _produce(cp: RunningCp, token: str, agent_id: str, manifests: Path) -> tuple[int, Any]:
    """``produce k8s --wait -o json`` with ``token``: its exit code and what it showed."""
    flags = ["--cp-url", cp.api_url, "--ca-cert", str(cp.ca_file), "--agent", agent_id]
    flags += ["--manifest", str(manifests), "--wait", "-o", "json"]
    done = transporter(
        "produce",
        "k8s",
        *flags,
        env={**clean_environment(), "TRANSPORTER_TOKEN": token},
        timeout=120,
    )
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def _results(shown: Any) -> dict[str, dict[str, str]]:
    return {r["kind"]: r for r in shown["resources"]}


APPLIED = ("created", "updated", "unchanged")


def test_the_agent_runs_with_the_charts_rbac_alone(cluster: Cluster, tmp_path: Path) -> None:
    chart = install_agent_rbac(cluster, _release(), DEFAULT)
    policy = _policy_wider_than_the_rbac(chart, tmp_path / "policy.yaml")
    with running_cp(tmp_path / "cp") as cp:
        token = cp.new_token()
        with _agent_in_pod(cluster, chart, cp, tmp_path, "--policy", str(policy)) as (agent, _):
            code, demo = _produce(cp, token, agent, HELLO)
            assert code == 0, demo
            event = _outside_the_rbac(tmp_path / "event", chart.namespace)
            code, denied = _produce(cp, token, agent, event)
            assert code == 1, denied

    assert demo["state"] == "completed"
    assert [(r["kind"], r["name"]) for r in demo["resources"]] == [
        ("Namespace", DEMO_NAMESPACE),
        ("ConfigMap", "greeting"),
        ("Deployment", "hello"),
    ]
    assert all(r["status"] in APPLIED for r in demo["resources"])

    assert denied["state"] == "failed"
    results = _results(denied)
    assert results["ConfigMap"]["status"] in APPLIED
    assert results["Service"]["status"] == "failed"
    said = f'services "{chart.namespace}" is forbidden: User "{chart.user}" cannot'
    assert said in results["Service"]["message"]
    assert f'in the namespace "{DEMO_NAMESPACE}"' in results["Service"]["message"]


def test_the_charts_account_may_do_what_its_policy_allows_and_nothing_more(
    cluster: Cluster,
) -> None:
    """Asked as ``kubectl auth can-i --as`` asks (SubjectAccessReview): no power that owns a
    cluster, nothing outside the policy's kinds and namespaces, no delete unless asked."""
    chart = install_agent_rbac(cluster, _release(), DEFAULT)
    subject = Subject.service_account(chart.namespace, chart.account)
    granted = [
        Probe("create", "deployments", "apps", namespace=DEMO_NAMESPACE),
        Probe("patch", "configmaps", namespace=DEMO_NAMESPACE),
        Probe("list", "clusterrolebindings", "rbac.authorization.k8s.io"),
        Probe("get", "clusterroles", "rbac.authorization.k8s.io"),
        Probe("list", "rolebindings", "rbac.authorization.k8s.io", namespace=DEMO_NAMESPACE),
        Probe("delete", "configmaps", namespace=chart.namespace),  # its journal's
    ]
    refused = [
        *POWERS,
        Probe("get", "secrets", namespace=DEMO_NAMESPACE),
        Probe("get", "secrets", namespace=chart.namespace),
        Probe("get", "services", namespace=DEMO_NAMESPACE),
        Probe("delete", "deployments", "apps", namespace=DEMO_NAMESPACE),
        Probe("create", "configmaps", namespace="default"),
        Probe("create", "deployments", "apps", namespace="kube-system"),
        Probe("list", "configmaps", namespace=DEMO_NAMESPACE),
        Probe("create", "pods", namespace=DEMO_NAMESPACE),
    ]
    assert [str(p) for p in granted if not can_i(cluster, subject, p)] == []
    assert [str(p) for p in refused if can_i(cluster, subject, p)] == []
    # Namespaces by name: the demo's (the policy's), its own (its journal's), no other.
    namespaces = {
        name: [
            verb
            for verb in ("get", "patch", "delete")
            if can_i_on(cluster, subject, Probe(verb, "namespaces"), name)
        ]
        for name in (DEMO_NAMESPACE, chart.namespace, "default", "kube-system")
    }
    assert namespaces == {
        DEMO_NAMESPACE: ["get", "patch"],
        chart.namespace: ["get", "patch"],
        "default": [],
        "kube-system": [],
    }


def _grant_producer(cluster: Cluster, user: str, namespace: str) -> None:
    """What the cluster's own RBAC lets the producer ``user`` do: the demo event's objects."""
    name = user.replace(":", "-")
    apply_as_admin(
        cluster,
        f"""
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: {name}}}
rules:
  - {{apiGroups: [""], resources: [namespaces], resourceNames: [{namespace}], verbs: [get, patch]}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: {name}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {name}}}
subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: User, name: "{user}"}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: {name}, namespace: {namespace}}}
rules:
  - {{apiGroups: [""], resources: [configmaps], verbs: [get, create, patch]}}
  - {{apiGroups: [apps], resources: [deployments], verbs: [get, create, patch]}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: {name}, namespace: {namespace}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: {name}}}
subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: User, name: "{user}"}}]
""",
    )


def test_acting_as_the_producer_the_agent_holds_only_impersonation(
    cluster: Cluster, tmp_path: Path
) -> None:
    """``impersonate.enabled``: the chart gives the agent no right on the events' objects,
    only to act as the producers named. The producer the cluster grants the demo's objects
    completes the demo event; its Service (the policy allows it) is the API server's 403 for
    the producer's user; a producer the chart does not name cannot be acted as."""
    release = _release()
    user = f"transporter:token:{release}"
    chart = install_agent_rbac(
        cluster,
        release,
        AGENT_CHART / "examples" / "impersonate.yaml",
        sets={"impersonate.users": "{" + user + "}"},
    )
    subject = Subject.service_account(chart.namespace, chart.account)
    assert not can_i(cluster, subject, Probe("create", "configmaps", namespace=DEMO_NAMESPACE))
    _grant_producer(cluster, user, DEMO_NAMESPACE)
    policy = _policy_wider_than_the_rbac(chart, tmp_path / "policy.yaml")
    with running_cp(tmp_path / "cp") as cp:
        named_token = cp.new_token(release)
        other_token = cp.new_token(f"{release}-other")
        flags = ("--policy", str(policy), "--impersonate", "producer")
        with _agent_in_pod(cluster, chart, cp, tmp_path, *flags) as (agent, _):
            code, demo = _produce(cp, named_token, agent, HELLO)
            assert code == 0, demo
            event = _outside_the_rbac(tmp_path / "event", chart.namespace)
            code, denied = _produce(cp, named_token, agent, event)
            assert code == 1, denied
            code, stranger = _produce(cp, other_token, agent, HELLO)
            assert code == 1, stranger

    assert demo["state"] == "completed"
    assert all(r["status"] in APPLIED for r in demo["resources"])
    results = _results(denied)
    assert results["ConfigMap"]["status"] in APPLIED
    said = f'services "{chart.namespace}" is forbidden: User "{user}" cannot'
    assert said in results["Service"]["message"]
    assert stranger["state"] == "failed"
    messages = " ".join(r["message"] for r in stranger["resources"])
    assert 'cannot impersonate resource "users"' in messages, stranger
