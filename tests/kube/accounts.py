"""Identities on a test cluster for the credential tests: service accounts and their tokens
(TokenRequest), and kubeconfigs that use them."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio
import yaml

from tests.bed.kube import Cluster
from transporter.kube import KubeRejected
from transporter.kube.config import LoadedConfig, load
from transporter.kube.transport import Transport, new_transport


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
