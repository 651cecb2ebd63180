"""The lean import of the official client (kube/client.py); requests made without its ApiClient."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import trio
import yaml

from tests.bed.kube import Cluster
from transporter.kube import KubeRejected
from transporter.kube.config import load
from transporter.kube.transport import Transport, new_transport

NOT_LOADED = (
    "pydantic",
    "requests",
    "requests_oauthlib.oauth2_session",
    "kubernetes.client.api_client",
    "kubernetes.client.api",
    "kubernetes.dynamic",
    "kubernetes.watch",
    "kubernetes.stream",
)


def _python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_agent_loads_only_the_parts_of_the_client_it_uses() -> None:
    out = _python(
        "import sys, json, transporter.agent.main\n"
        f"print(json.dumps([m for m in {NOT_LOADED!r} if m in sys.modules]))\n"
    )
    assert json.loads(out) == []


def test_the_whole_client_is_still_there_for_whoever_asks() -> None:
    out = _python(
        "import transporter.kube.client\n"
        "import kubernetes\n"
        "from kubernetes import client, dynamic\n"
        "from kubernetes.config import kube_config\n"
        "import requests_oauthlib\n"
        "assert isinstance(client.CoreV1Api, type), client.CoreV1Api\n"
        "assert isinstance(kube_config.ApiClient(), client.ApiClient)\n"
        "assert isinstance(dynamic.DynamicClient, type)\n"
        "assert isinstance(requests_oauthlib.OAuth2Session, type)\n"
        "session = kube_config.OAuth2Session(client_id='x')\n"
        "assert isinstance(session, requests_oauthlib.OAuth2Session)\n"
        "print(kubernetes.__version__)\n"
    )
    assert out.strip()


async def _admin(cluster: Cluster) -> Transport:
    loaded = await trio.to_thread.run_sync(load, cluster.kubeconfig)
    return new_transport(loaded.configuration, timeout=10.0, limiter=trio.CapacityLimiter(1))


def _token_kubeconfig(cluster: Cluster, token: str, path: Path) -> Path:
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    for user in config["users"]:
        user["user"] = {"token": token}
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.kube
async def test_a_bearer_token_from_the_kubeconfig_is_sent(cluster: Cluster, tmp_path: Path) -> None:
    name = f"lean-{uuid.uuid4().hex[:8]}"
    admin = await _admin(cluster)
    try:
        await admin.request(
            "POST",
            "/api/v1/namespaces/default/serviceaccounts",
            body={"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}},
        )
        issued = await admin.request(
            "POST",
            f"/api/v1/namespaces/default/serviceaccounts/{name}/token",
            body={
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": 600},
            },
        )
    finally:
        admin.close()
    token = issued["status"]["token"]

    as_account = _token_kubeconfig(cluster, token, tmp_path / "account.kubeconfig")
    loaded = await trio.to_thread.run_sync(load, as_account)
    transport = new_transport(loaded.configuration, timeout=10.0, limiter=trio.CapacityLimiter(1))
    try:
        assert "gitVersion" in await transport.get("/version")
        with pytest.raises(KubeRejected) as refused:
            await transport.get("/api/v1/namespaces/default/secrets")
    finally:
        transport.close()
    # Authenticated as the account (RBAC gives it nothing), not anonymous and not refused.
    assert refused.value.code == 403
    assert f"system:serviceaccount:default:{name}" in refused.value.message

    wrong = _token_kubeconfig(cluster, token[:-4] + "AAAA", tmp_path / "wrong.kubeconfig")
    loaded = await trio.to_thread.run_sync(load, wrong)
    transport = new_transport(loaded.configuration, timeout=10.0, limiter=trio.CapacityLimiter(1))
    try:
        with pytest.raises(KubeRejected) as unauthorised:
            await transport.get("/api/v1/namespaces/default/secrets")
    finally:
        transport.close()
    assert unauthorised.value.code == 401
