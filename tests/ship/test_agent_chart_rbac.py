"""The agent chart's RBAC is enough, and no more: its ServiceAccount and RBAC (``helm template``
with the default values) applied to a real API server for real, and the agent run as in a pod
with that ServiceAccount's token (TokenRequest) and no kubeconfig. The demo event completes;
an object the policy lets through but the chart's RBAC does not grant fails with the API
server's own 403, reported for that object."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import yaml

from tests.bed.helm import (
    AGENT_CHART,
    admin_client,
    ensure_namespace,
    in_pod_argv,
    in_pod_environment,
    install_order,
    named,
    render,
    server_side_apply,
    service_account_folder,
    service_account_token,
)
from tests.bed.kube import REPO, Cluster
from tests.bed.process import started
from tests.bed.roles import (
    AGENT_LISTENING,
    PYTHON_TRANSPORTER,
    REGISTERED,
    clean_environment,
    create_bundle,
    running_cp,
)

HELLO = REPO / "examples" / "hello"
RBAC_KINDS = ("Namespace", "ServiceAccount", "Role", "RoleBinding", "ClusterRole")
APPLIED = (*RBAC_KINDS, "ClusterRoleBinding")
"""What of the chart is applied: the account, its RBAC, and the namespaces its Roles live in
(not the Deployment: there is no kubelet; the agent runs here, as the pod would)."""


def _policy_wider_than_the_rbac(objects: list[dict[str, Any]], path: Path) -> Path:
    """The chart's policy, with one kind more (core/Service) than its values, and so than its
    RBAC: an operator who edited the ConfigMap by hand. The agent lets such an object through
    and tries; the API server must refuse it."""
    (config_map,) = named(objects, "ConfigMap")
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
        " transporter-hello}\ndata: {k: v}\n"
    )
    (folder / "02-service.yaml").write_text(
        f"apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace:"
        " transporter-hello}\nspec: {ports: [{port: 80}], selector: {app: hello}}\n"
    )
    return folder


def test_the_agent_runs_with_the_charts_rbac_alone(cluster: Cluster, tmp_path: Path) -> None:
    namespace = f"agent-{uuid.uuid4().hex[:8]}"
    objects = render(
        AGENT_CHART,
        AGENT_CHART / "examples" / "default.yaml",
        namespace=namespace,
        release="transporter-agent",
    )
    with admin_client(cluster) as dynamic:
        ensure_namespace(dynamic, namespace)
        for obj in install_order(objects):
            if obj["kind"] in APPLIED:
                server_side_apply(dynamic, obj, dry_run=False)
    (account,) = named(objects, "ServiceAccount")
    account_name = account["metadata"]["name"]
    token = service_account_token(cluster, namespace, account_name)
    folder = service_account_folder(cluster, tmp_path / "serviceaccount", namespace, token)
    policy = _policy_wider_than_the_rbac(objects, tmp_path / "policy.yaml")

    data = tmp_path / "cp"
    with running_cp(data) as cp:
        found = AGENT_LISTENING.search(cp.output)
        assert found is not None, cp.output
        agent_id = f"chart-{namespace}"
        bundle = create_bundle(data, agent_id, tmp_path / "bundle")
        argv = [*PYTHON_TRANSPORTER, "agent", "--bundle", str(bundle), "--cp-url", found.group(1)]
        argv += ["--policy", str(policy)]
        env = in_pod_environment(cluster, clean_environment(), tmp_path / "home")
        with started(in_pod_argv(folder, argv), REGISTERED, env=env, timeout=60) as (agent, _):
            demo = cp.produce_and_wait(agent_id, HELLO)
            assert demo.returncode == 0, demo.stdout + demo.stderr + agent.output
            denied = cp.produce_and_wait(agent_id, _outside_the_rbac(tmp_path / "e", namespace))
            assert denied.returncode == 1, denied.stdout + denied.stderr + agent.output
        log = agent.output
    assert "Traceback" not in log
    assert f"(namespace {namespace})" in log  # its journal, in its ServiceAccount's namespace

    shown = json.loads(demo.stdout)
    assert shown["state"] == "completed"
    assert [(r["kind"], r["name"]) for r in shown["resources"]] == [
        ("Namespace", "transporter-hello"),
        ("ConfigMap", "greeting"),
        ("Deployment", "hello"),
    ]
    assert all(r["status"] in ("created", "updated", "unchanged") for r in shown["resources"])

    refused = json.loads(denied.stdout)
    assert refused["state"] == "failed"
    results = {r["kind"]: r for r in refused["resources"]}
    assert results["ConfigMap"]["status"] in ("created", "updated", "unchanged")
    service = results["Service"]
    assert service["status"] == "failed"
    user = f"system:serviceaccount:{namespace}:{account_name}"
    assert f'services "{namespace}" is forbidden: User "{user}" cannot' in service["message"]
    assert 'in the namespace "transporter-hello"' in service["message"]
