"""Real Kubernetes clusters for tests: one etcd and one kube-apiserver each, on free ports.

There is no controller-manager, scheduler or kubelet: objects are stored and served exactly as a
real API server does, but namespaces never finish deleting and Deployments get no status.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import attrs
import yaml

from tests.bed.certs import ClusterCerts, make_cluster_certs
from tests.bed.process import Child, PortClash, free_port

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 120.0
"""Seconds for etcd and the API server to become ready; a cold 2-core machine needs ~10."""
PORT_CLASH_ATTEMPTS = 3


def testbed_bin() -> Path:
    """The folder with kube-apiserver and etcd: ``$TRANSPORTER_TESTBED_BIN`` or built (cached)."""
    given = os.environ.get("TRANSPORTER_TESTBED_BIN")
    if given:
        return Path(given)
    out = subprocess.run(
        [str(REPO / "testbed" / "build.sh")], check=True, stdout=subprocess.PIPE, text=True
    )
    return Path(out.stdout.strip().splitlines()[-1])


@attrs.frozen
class Cluster:
    """One running test cluster."""

    name: str
    folder: Path
    server: str
    kubeconfig: Path
    certs: ClusterCerts
    etcd: Child = attrs.field(repr=False)
    apiserver: Child = attrs.field(repr=False)


def _wait_until_ready(
    child: Child, probe: urllib.request.Request, ctx: ssl.SSLContext | None, deadline: float
) -> None:
    """Poll a health endpoint until it answers 200; fail early if the program exits."""
    while True:
        child.check_alive()
        try:
            with urllib.request.urlopen(probe, context=ctx, timeout=2) as answer:
                if answer.status == 200:
                    return
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, ssl.SSLError):
                raise  # a certificate problem does not go away by waiting
        except (ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{child.name} not ready after {START_TIMEOUT} s:\n{child.tail()}")
        time.sleep(0.1)


def _start_etcd(bin_dir: Path, folder: Path, deadline: float) -> tuple[Child, str]:
    client, peer = free_port(), free_port()
    client_url, peer_url = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
    etcd = Child(
        [
            str(bin_dir / "etcd"),
            "--name=default",
            f"--data-dir={folder / 'etcd'}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=default={peer_url}",
            "--listen-metrics-urls=",
            "--unsafe-no-fsync",  # a test cluster needs speed, not crash safety
            "--log-level=warn",
        ],
        folder / "etcd.log",
    )
    try:
        _wait_until_ready(etcd, urllib.request.Request(f"{client_url}/health"), None, deadline)
    except BaseException:
        etcd.stop()
        raise
    return etcd, client_url


def _start_apiserver(
    bin_dir: Path, folder: Path, certs: ClusterCerts, etcd_url: str, deadline: float
) -> tuple[Child, str]:
    port = free_port()
    server = f"https://127.0.0.1:{port}"
    apiserver = Child(
        [
            str(bin_dir / "kube-apiserver"),
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={folder / 'apiserver-certs'}",
            f"--tls-cert-file={certs.serving_cert}",
            f"--tls-private-key-file={certs.serving_key}",
            f"--client-ca-file={certs.ca_cert}",
            f"--service-account-key-file={certs.sa_public}",
            f"--service-account-signing-key-file={certs.sa_private}",
            f"--service-account-issuer={server}",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--authorization-mode=RBAC",
            "--allow-privileged=true",
            "--endpoint-reconciler-type=none",
            "--v=0",
        ],
        folder / "kube-apiserver.log",
    )
    ctx = ssl.create_default_context(cafile=str(certs.ca_cert))
    ctx.load_cert_chain(str(certs.admin_cert), str(certs.admin_key))
    try:
        _wait_until_ready(apiserver, urllib.request.Request(f"{server}/readyz"), ctx, deadline)
    except BaseException:
        apiserver.stop()
        raise
    return apiserver, server


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(
    path: Path,
    name: str,
    server: str,
    certs: ClusterCerts,
    *,
    user: str = "admin",
    client: tuple[Path, Path] | None = None,
) -> None:
    """A self-contained kubeconfig (certificates inline), as kubectl and the client accept; its
    user is the admin, or ``user`` with the ``client`` certificate and key."""
    cert, key = client or (certs.admin_cert, certs.admin_key)
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": name,
                "cluster": {"server": server, "certificate-authority-data": _b64(certs.ca_cert)},
            }
        ],
        "users": [
            {
                "name": f"{name}-{user}",
                "user": {
                    "client-certificate-data": _b64(cert),
                    "client-key-data": _b64(key),
                },
            }
        ],
        "contexts": [{"name": name, "context": {"cluster": name, "user": f"{name}-{user}"}}],
        "current-context": name,
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    path.chmod(0o600)


@contextlib.contextmanager
def running_cluster(name: str, folder: Path, *, bin_dir: Path | None = None) -> Iterator[Cluster]:
    """Start etcd and kube-apiserver in ``folder``; stop both (and remove their data) on exit."""
    bin_dir = bin_dir or testbed_bin()
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    certs = make_cluster_certs(folder / "pki")
    deadline = time.monotonic() + START_TIMEOUT
    for attempt in range(1, PORT_CLASH_ATTEMPTS + 1):
        # A port taken between free_port() and the bind is a clash with another process, not a
        # bug of ours: try fresh ports a few times, and say so when it keeps happening.
        try:
            etcd, etcd_url = _start_etcd(bin_dir, folder, deadline)
        except PortClash:
            if attempt == PORT_CLASH_ATTEMPTS:
                raise
            shutil.rmtree(folder / "etcd", ignore_errors=True)
            continue
        try:
            apiserver, server = _start_apiserver(bin_dir, folder, certs, etcd_url, deadline)
        except PortClash:
            etcd.stop()
            if attempt == PORT_CLASH_ATTEMPTS:
                raise
            shutil.rmtree(folder / "etcd", ignore_errors=True)
            continue
        except BaseException:
            etcd.stop()
            raise
        break
    kubeconfig = folder.parent / f"{name}.kubeconfig"
    write_kubeconfig(kubeconfig, name, server, certs)
    cluster = Cluster(name, folder, server, kubeconfig, certs, etcd, apiserver)
    try:
        yield cluster
    finally:
        apiserver.stop()
        etcd.stop()
        kubeconfig.unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)


def describe(cluster: Cluster) -> str:
    return json.dumps(
        {"name": cluster.name, "server": cluster.server, "kubeconfig": str(cluster.kubeconfig)}
    )
