"""What makes readiness real in a test cluster: kube-controller-manager, kube-scheduler and KWOK.

:func:`running_controllers` starts them beside a cluster of :func:`tests.bed.kube.running_cluster`:
kube-controller-manager with only the controllers that Deployments, ReplicaSets, StatefulSets,
DaemonSets, Jobs, namespaces and service accounts need, kube-scheduler, and kwok managing one fake
node (``kwok-node-0``), whose Pods get a status as a kubelet would give it, without containers
(the stages are ``testbed/kwok/stages.yaml``):

- a Pod becomes Running and Ready at once;
- a Pod labelled :data:`NEVER_READY_LABEL` becomes Running but never Ready (``Ready=False``,
  ``ContainersNotReady``): so a Deployment of such Pods never becomes Available;
- a Job's Pod succeeds at once; a deleted Pod goes at once (namespaces finish deleting).

Each program has its own client certificate from the cluster's CA and its own kubeconfig, binds
free ports on 127.0.0.1 and dies with the test run. Starting waits on their health endpoints and
on the node's Ready condition, never on a sleep.
"""

from __future__ import annotations

import contextlib
import json
import os
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from tests.bed.certs import issue_client_cert
from tests.bed.kube import REPO, Cluster, write_kubeconfig
from tests.bed.process import Child, PortClash, free_port

START_TIMEOUT = 120.0
"""Seconds for the three programs and the node to become ready."""
PORT_CLASH_ATTEMPTS = 3
STAGES = REPO / "testbed" / "kwok" / "stages.yaml"
NODE = "kwok-node-0"
NODE_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
"""kwok manages the nodes that carry this annotation (ours: one)."""
NEVER_READY_LABEL = "transporter.dev/kwok-never-ready"
"""A Pod with this label (any value) runs but never becomes Ready."""
CONTROLLERS = (
    "deployment-controller",
    "replicaset-controller",
    "statefulset-controller",
    "daemonset-controller",
    "job-controller",
    "namespace-controller",
    "garbage-collector-controller",
    "node-lifecycle-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
)
"""kube-controller-manager's ``--controllers``: the node lifecycle controller lifts the
``node.kubernetes.io/not-ready`` taint that every new node is given once kwok makes it Ready
(and would taint it again if kwok stopped renewing its lease); no endpoints, volumes, quotas,
disruption budgets or certificate signing."""


def controllers_bin() -> Path:
    """The folder with kube-controller-manager, kube-scheduler and kwok:
    ``$TRANSPORTER_TESTBED_CONTROLLERS_BIN`` or built (cached) by testbed/build-controllers.sh."""
    given = os.environ.get("TRANSPORTER_TESTBED_CONTROLLERS_BIN")
    if given:
        return Path(given)
    out = subprocess.run(
        [str(REPO / "testbed" / "build-controllers.sh")],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    return Path(out.stdout.strip().splitlines()[-1])


@attrs.frozen
class Controllers:
    """The programs that run beside one cluster."""

    controller_manager: Child = attrs.field(repr=False)
    scheduler: Child = attrs.field(repr=False)
    kwok: Child = attrs.field(repr=False)
    node: str = NODE


def _healthy(url: str, ctx: ssl.SSLContext | None) -> bool:
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=2) as answer:
            return bool(answer.status == 200)
    except urllib.error.HTTPError:
        return False  # up, not healthy yet (e.g. 500 while a check fails)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def _wait_healthy(child: Child, url: str, ctx: ssl.SSLContext | None, deadline: float) -> None:
    while not _healthy(url, ctx):
        child.check_alive()  # PortClash when its port was taken meanwhile
        if time.monotonic() > deadline:
            raise TimeoutError(f"{child.name}: {url} not healthy in time:\n{child.tail()}")
        time.sleep(0.1)


def _self_signed() -> ssl.SSLContext:
    """For the health endpoints of kube-controller-manager and kube-scheduler: they serve a
    certificate they made themselves (in ``--cert-dir``)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _start(
    argv: list[str],
    log: Path,
    url: str,
    ctx: ssl.SSLContext | None,
    env: dict[str, str] | None = None,
) -> Child:
    """Start a program and wait until ``url`` answers 200."""
    deadline = time.monotonic() + START_TIMEOUT
    child = Child(argv, log, env=env)
    try:
        _wait_healthy(child, url, ctx, deadline)
    except BaseException:
        child.stop()
        raise
    return child


def _with_fresh_port(start: Callable[[int], Child], attempts: int = PORT_CLASH_ATTEMPTS) -> Child:
    """``start`` on a free port; on a clash (another process took it meanwhile) a fresh one."""
    for attempt in range(1, attempts + 1):
        try:
            return start(free_port())
        except PortClash:
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


def _api(cluster: Cluster, method: str, path: str, body: object = None) -> object:
    ctx = ssl.create_default_context(cafile=str(cluster.certs.ca_cert))
    ctx.load_cert_chain(str(cluster.certs.admin_cert), str(cluster.certs.admin_key))
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{cluster.server}{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    with urllib.request.urlopen(request, context=ctx, timeout=10) as answer:
        return json.load(answer)


def _node_ready(cluster: Cluster) -> bool:
    try:
        node = _api(cluster, "GET", f"/api/v1/nodes/{NODE}")
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return False
        raise
    assert isinstance(node, dict)
    conditions = node.get("status", {}).get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    # Schedulable too: the not-ready taint of a new node is lifted (node lifecycle controller).
    taints = node.get("spec", {}).get("taints") or []
    return ready and not any(t.get("effect") in ("NoSchedule", "NoExecute") for t in taints)


def _create_node(cluster: Cluster) -> None:
    key, value = NODE_ANNOTATION
    _api(
        cluster,
        "POST",
        "/api/v1/nodes",
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": NODE,
                "annotations": {key: value},
                "labels": {
                    "kubernetes.io/hostname": NODE,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "kwok",
                },
            },
        },
    )


def _wait_node_ready(cluster: Cluster, kwok: Child, deadline: float) -> None:
    while not _node_ready(cluster):
        kwok.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"node {NODE} not Ready and untainted in time:\n{kwok.tail()}")
        time.sleep(0.1)


@contextlib.contextmanager
def running_controllers(cluster: Cluster, *, bin_dir: Path | None = None) -> Iterator[Controllers]:
    """Start kube-controller-manager, kube-scheduler and kwok for ``cluster``, create the fake
    node and wait until it is Ready; stop all three on exit."""
    bin_dir = bin_dir or controllers_bin()
    folder = cluster.folder / "controllers"
    folder.mkdir(parents=True, exist_ok=True)
    certs = cluster.certs

    def kubeconfig(user: str, organization: str | None) -> Path:
        client = issue_client_cert(certs, user, organization)
        path = folder / f"{user.replace(':', '-')}.kubeconfig"
        write_kubeconfig(path, cluster.name, cluster.server, certs, user=user, client=client)
        return path

    # kube-controller-manager runs every controller with its own identity (no
    # --use-service-account-credentials): that identity must be allowed all they do.
    kcm_config = kubeconfig("system:kube-controller-manager", "system:masters")
    # The bootstrap RBAC roles give kube-scheduler all it needs under its own name.
    scheduler_config = kubeconfig("system:kube-scheduler", None)
    kwok_config = kubeconfig("kwok", "system:masters")
    insecure = _self_signed()

    def controller_manager(port: int) -> Child:
        argv = [
            str(bin_dir / "kube-controller-manager"),
            f"--kubeconfig={kcm_config}",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={folder / 'kcm-certs'}",
            f"--controllers={','.join(CONTROLLERS)}",
            f"--service-account-private-key-file={certs.sa_private}",
            f"--root-ca-file={certs.ca_cert}",
            "--leader-elect=false",
            "--v=0",
        ]
        return _start(
            argv,
            folder / "kube-controller-manager.log",
            f"https://127.0.0.1:{port}/healthz",
            insecure,
        )

    def scheduler(port: int) -> Child:
        argv = [
            str(bin_dir / "kube-scheduler"),
            f"--kubeconfig={scheduler_config}",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={folder / 'scheduler-certs'}",
            "--leader-elect=false",
            "--v=0",
        ]
        return _start(
            argv, folder / "kube-scheduler.log", f"https://127.0.0.1:{port}/readyz", insecure
        )

    def kwok(port: int) -> Child:
        key, value = NODE_ANNOTATION
        argv = [
            str(bin_dir / "kwok"),
            f"--config={STAGES}",
            f"--kubeconfig={kwok_config}",
            f"--manage-nodes-with-annotation-selector={key}={value}",
            f"--server-address=127.0.0.1:{port}",
            "--node-lease-duration-seconds=40",
            "--node-ip=10.1.0.1",
            "--cidr=10.2.0.0/16",
        ]
        # Its own work folder: no ~/.kwok/kwok.yaml of the user's is read.
        env = {**os.environ, "KWOK_WORKDIR": str(folder / "kwok")}
        return _start(argv, folder / "kwok.log", f"http://127.0.0.1:{port}/healthz", None, env)

    with contextlib.ExitStack() as stack:
        kcm = _with_fresh_port(controller_manager)
        stack.callback(kcm.stop)
        sched = _with_fresh_port(scheduler)
        stack.callback(sched.stop)
        node_kwok = _with_fresh_port(kwok)
        stack.callback(node_kwok.stop)
        _create_node(cluster)
        _wait_node_ready(cluster, node_kwok, time.monotonic() + START_TIMEOUT)
        yield Controllers(kcm, sched, node_kwok)


@contextlib.contextmanager
def api_client(cluster: Cluster) -> Iterator[k8s.ApiClient]:
    """The official client (a dev dependency) on ``cluster``, as its admin."""
    made = k8s_config.new_client_from_config(config_file=str(cluster.kubeconfig))  # type: ignore[no-untyped-call]
    assert isinstance(made, k8s.ApiClient)
    with made:
        yield made


def new_namespace(api: k8s.ApiClient, prefix: str) -> str:
    """A namespace of its own for one test: ``prefix-<random>``."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    k8s.CoreV1Api(api).create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
    return name


def deployment_json(
    name: str, namespace: str = "default", *, never_ready: bool = False, **spec: Any
) -> str:
    """A Deployment of one replica (one JSON document is YAML too); ``never_ready``: its Pods
    carry :data:`NEVER_READY_LABEL`, so on a ready test bed it never becomes Available.
    ``spec``: more fields of its spec."""
    labels = {"app": name, **({NEVER_READY_LABEL: "true"} if never_ready else {})}
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "main", "image": "registry.invalid/app:1"}]},
            },
            **spec,
        },
    }
    return json.dumps(body)
