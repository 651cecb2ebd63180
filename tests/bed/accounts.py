"""Identities on a test cluster for the credential tests: service accounts and their tokens
(TokenRequest), kubeconfigs that use them, and exec credential plugins that hand them out."""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio
import yaml

from tests.bed.kube import Cluster
from transporter.kube import KubeRejected
from transporter.kube.credentials import LoadedConfig, load
from transporter.kube.transport import Transport, new_transport

EXEC_V1 = "client.authentication.k8s.io/v1"
EXEC_V1BETA1 = "client.authentication.k8s.io/v1beta1"


@asynccontextmanager
async def using(loaded: LoadedConfig) -> AsyncIterator[Transport]:
    """A transport with the credentials of ``loaded``, closed on the way out."""
    limiter = trio.CapacityLimiter(2)
    transport = new_transport(loaded.configuration, timeout=10.0, limiter=limiter)
    try:
        yield transport
    finally:
        transport.close()


@asynccontextmanager
async def connected(kubeconfig: Path) -> AsyncIterator[Transport]:
    """A transport with the credentials of ``kubeconfig``."""
    loaded = await trio.to_thread.run_sync(load, kubeconfig)
    async with using(loaded) as transport:
        yield transport


async def account_token(cluster: Cluster, name: str, *, namespace: str = "default") -> str:
    """A token of ServiceAccount ``namespace/name`` (made if missing), from the TokenRequest
    API, as the cluster admin."""
    async with connected(cluster.kubeconfig) as admin:
        try:
            await admin.request(
                "POST",
                f"/api/v1/namespaces/{namespace}/serviceaccounts",
                body={"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}},
            )
        except KubeRejected as exc:
            if exc.code != 409:
                raise
        issued = await admin.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            body={
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": 3600},
            },
        )
    token: str = issued["status"]["token"]
    return token


async def make_cluster_admin(cluster: Cluster, name: str, *, namespace: str = "default") -> None:
    """Bind ServiceAccount ``namespace/name`` to cluster-admin."""
    async with connected(cluster.kubeconfig) as admin:
        await admin.request(
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            body={
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": f"{namespace}-{name}-admin"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "cluster-admin",
                },
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
            },
        )


def account_name(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


def with_user(
    cluster: Cluster,
    user: Mapping[str, Any],
    path: Path,
    *,
    cluster_changes: Mapping[str, Any] | None = None,
) -> Path:
    """A copy of the cluster's kubeconfig whose user is ``user`` (and whose cluster entry is
    changed by ``cluster_changes``: ``None`` values remove a key)."""
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    config["users"][0]["user"] = dict(user)
    entry = config["clusters"][0]["cluster"]
    for key, value in (cluster_changes or {}).items():
        if value is None:
            entry.pop(key, None)
        else:
            entry[key] = value
    path.write_text(yaml.safe_dump(config))
    return path


def certificate_data(cluster: Cluster) -> dict[str, str]:
    """The admin client certificate, as a kubeconfig's ``-data`` keys."""
    return {
        "client-certificate-data": base64.b64encode(cluster.certs.admin_cert.read_bytes()).decode(),
        "client-key-data": base64.b64encode(cluster.certs.admin_key.read_bytes()).decode(),
    }


PLUGIN = """\
#!{python}
# A test exec credential plugin: does what {plan} says, and notes each run in {runs}.
import datetime, json, os, sys, time
seen = {{
    "info": json.loads(os.environ["KUBERNETES_EXEC_INFO"]),
    "args": sys.argv[1:],
    "env": os.environ.get("PLUGIN_TEST_ENV"),
}}
with open({runs!r}, "a") as runs:
    runs.write(json.dumps(seen) + "\\n")
plan = json.load(open({plan!r}))
time.sleep(plan.get("sleep", 0))
if plan.get("exit"):
    sys.stderr.write(plan.get("stderr", ""))
    sys.exit(plan["exit"])
if "stdout" in plan:
    sys.stdout.write(plan["stdout"])
    sys.exit(0)
keys = ("token", "clientCertificateData", "clientKeyData")
status = {{key: plan[key] for key in keys if key in plan}}
if plan.get("lifetime") is not None:
    until = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=plan["lifetime"])
    status["expirationTimestamp"] = until.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
credential = {{"apiVersion": plan["apiVersion"], "kind": "ExecCredential", "status": status}}
json.dump(credential, sys.stdout)
"""


class Plugin:
    """An exec credential plugin in ``folder`` whose answers a test sets with :meth:`plan`."""

    def __init__(self, folder: Path, *, api_version: str = EXEC_V1) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "credential-plugin"
        self.runs_file = folder / "plugin-runs"
        self.plan_file = folder / "plugin-plan.json"
        self.api_version = api_version
        self.path.write_text(
            PLUGIN.format(python=sys.executable, plan=str(self.plan_file), runs=str(self.runs_file))
        )
        self.path.chmod(0o755)
        self.plan()

    def plan(self, **plan: Any) -> None:
        self.plan_file.write_text(json.dumps({"apiVersion": self.api_version, **plan}))

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every run so far: ``info`` (its ``KUBERNETES_EXEC_INFO``), ``args``, and ``env``
        (``$PLUGIN_TEST_ENV``)."""
        if not self.runs_file.exists():
            return []
        return [json.loads(line) for line in self.runs_file.read_text().splitlines()]

    def exec_entry(self, **extra: Any) -> dict[str, Any]:
        """The ``users[].user.exec`` that runs it."""
        entry: dict[str, Any] = {"command": str(self.path), "apiVersion": self.api_version}
        if self.api_version == EXEC_V1:
            entry["interactiveMode"] = "Never"
        return entry | extra
