"""The Helm charts under ``helm/`` as the tests use them: helm itself (``scripts/install-helm``,
built at a pinned version and cached outside the clone), charts rendered into objects, and
those objects sent to a test cluster, as a server-side dry run or for real (server-side apply,
as the cluster admin, through the official client).

And one way to run a program as in a pod (:func:`in_pod_argv`): in a private mount namespace
where ``/var/run/secrets/kubernetes.io/serviceaccount`` holds a ServiceAccount's token, the
cluster's CA and the namespace, with ``KUBERNETES_SERVICE_HOST``/``PORT`` naming the API
server. Nothing of it is seen outside that process (we are root: ``unshare -m``).
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.dynamic import DynamicClient

from tests.bed.kube import REPO, Cluster
from tests.bed.rbac import Probe, Subject, can_i

CHARTS = REPO / "helm"
CP_CHART = CHARTS / "transporter-cp"
AGENT_CHART = CHARTS / "transporter-agent"
FIELD_MANAGER = "transporter-tests"
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
HELM_TIMEOUT = 900.0
"""Seconds for scripts/install-helm: a cold build from the module proxy takes a few minutes."""


class HelmFailed(RuntimeError):
    """helm exited non-zero; the message is what it wrote on stderr."""


@functools.cache
def helm_binary() -> Path:
    """helm at the pinned version (built on first use, then cached outside the clone)."""
    done = subprocess.run(
        [str(REPO / "scripts" / "install-helm")],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
        timeout=HELM_TIMEOUT,
    )
    return Path(done.stdout.strip().splitlines()[-1])


def helm(*args: str) -> str:
    """``helm ARGS``: its stdout; :class:`HelmFailed` with its stderr when it fails."""
    done = subprocess.run(
        [str(helm_binary()), *args], capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        raise HelmFailed(done.stderr.strip())
    return done.stdout


def examples(chart: Path) -> list[Path]:
    """The chart's example values files (each is linted, rendered and dry-run)."""
    return sorted((chart / "examples").glob("*.yaml"))


def render(
    chart: Path,
    *values: Path,
    namespace: str = "transporter",
    release: str | None = None,
    sets: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """``helm template`` of ``chart`` with the ``values`` files: the objects it renders."""
    args = ["template", release or chart.name, str(chart), "--namespace", namespace]
    for file in values:
        args += ["-f", str(file)]
    for key, value in (sets or {}).items():
        args += ["--set", f"{key}={value}"]
    return [doc for doc in yaml.safe_load_all(helm(*args)) if doc]


def named(objects: Iterable[Mapping[str, Any]], kind: str) -> list[Mapping[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def pod_specs(objects: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The pod templates of the rendered workloads."""
    return [obj["spec"]["template"]["spec"] for obj in named(objects, "Deployment")]


INSTALL_ORDER = ("Namespace", "ServiceAccount", "ClusterRole", "Role")
"""Kinds sent first, in this order (as helm installs them); the rest after, as rendered."""


def install_order(objects: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    def rank(obj: Mapping[str, Any]) -> int:
        kind = obj["kind"]
        return INSTALL_ORDER.index(kind) if kind in INSTALL_ORDER else len(INSTALL_ORDER)

    return sorted(objects, key=rank)


@contextmanager
def admin_client(cluster: Cluster) -> Iterator[DynamicClient]:
    """The official client's dynamic client, as the cluster's admin."""
    api: k8s.ApiClient = k8s_config.new_client_from_config(config_file=str(cluster.kubeconfig))  # type: ignore[no-untyped-call]
    with api:
        yield DynamicClient(api)  # type: ignore[no-untyped-call]


def server_side_apply(
    dynamic: DynamicClient, obj: Mapping[str, Any], *, dry_run: bool
) -> Mapping[str, Any]:
    """A forced server-side apply of ``obj`` (``dryRun=All`` when ``dry_run``): the object as
    the API server answers it; the server's refusal raises (the client's ``ApiException``)."""
    resource = dynamic.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
    answer = dynamic.server_side_apply(  # type: ignore[no-untyped-call]
        resource,
        body=dict(obj),
        namespace=obj["metadata"].get("namespace"),
        field_manager=FIELD_MANAGER,
        force_conflicts=True,
        dry_run="All" if dry_run else None,
    )
    result: Mapping[str, Any] = answer.to_dict()
    return result


def ensure_namespace(dynamic: DynamicClient, name: str) -> None:
    """Namespace ``name``, made for real (objects in it can only be dry-run once it exists)."""
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    server_side_apply(dynamic, body, dry_run=False)


def service_account_token(cluster: Cluster, namespace: str, name: str) -> str:
    """A token of ServiceAccount ``namespace/name`` from the TokenRequest API (one hour)."""
    request = k8s.AuthenticationV1TokenRequest(
        spec=k8s.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
    )
    api: k8s.ApiClient = k8s_config.new_client_from_config(config_file=str(cluster.kubeconfig))  # type: ignore[no-untyped-call]
    with api:
        issued = k8s.CoreV1Api(api).create_namespaced_service_account_token(
            name, namespace, request
        )
    if issued.status is None or not issued.status.token:
        raise RuntimeError(f"TokenRequest for {namespace}/{name} answered no token")
    return issued.status.token


def service_account_folder(cluster: Cluster, folder: Path, namespace: str, token: str) -> Path:
    """What the kubelet mounts at :data:`SERVICE_ACCOUNT_DIR`: ``token``, ``ca.crt``,
    ``namespace``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "token").write_text(token)
    (folder / "token").chmod(0o600)
    shutil.copyfile(cluster.certs.ca_cert, folder / "ca.crt")
    (folder / "namespace").write_text(namespace)
    return folder


IN_POD_SCRIPT = (
    # /var/run is /run here: a tmpfs over it in this mount namespace only, the folder made in
    # it, and the account's folder bound there read-only, as the kubelet mounts it.
    "set -eu; mount -t tmpfs -o mode=0755 tmpfs /run; mkdir -p {dir};"
    ' mount --bind "$1" {dir}; mount -o remount,bind,ro {dir}; shift; exec "$@"'
)


def in_pod_argv(account: Path, argv: Sequence[str]) -> list[str]:
    """``argv`` run as in a pod whose ServiceAccount folder is ``account``: a private mount
    namespace (``unshare -m``) where :data:`SERVICE_ACCOUNT_DIR` is ``account``. The process
    keeps its pid through ``unshare`` and ``sh``'s ``exec`` (it still dies with the tests)."""
    script = IN_POD_SCRIPT.format(dir=SERVICE_ACCOUNT_DIR)
    unshare = ["unshare", "--mount", "--propagation", "private", "--"]
    return [*unshare, "sh", "-c", script, "sh", str(account), *argv]


def in_pod_environment(cluster: Cluster, base: Mapping[str, str], home: Path) -> dict[str, str]:
    """``base`` with the variables a pod has for its API server, and no kubeconfig to fall
    back on (``KUBECONFIG`` dropped, ``HOME`` the empty folder ``home``)."""
    server = urlsplit(cluster.server)
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in base.items() if k != "KUBECONFIG"}
    env["HOME"] = str(home)
    env["KUBERNETES_SERVICE_HOST"] = server.hostname or ""
    env["KUBERNETES_SERVICE_PORT"] = str(server.port)
    return env


@attrs.frozen
class InstalledAgentChart:
    """The agent chart's ServiceAccount and RBAC, applied for real in release ``namespace``."""

    objects: list[dict[str, Any]]
    namespace: str
    account: str
    """The ServiceAccount's name."""

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.account}"


RBAC_OBJECTS = (
    "Namespace",
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "ClusterRole",
    "ClusterRoleBinding",
)
"""What of the agent chart is applied: its account, its RBAC and the namespaces its Roles live
in (not the Deployment: there is no kubelet; the tests run the agent as the pod would)."""


def install_agent_rbac(
    cluster: Cluster,
    namespace: str,
    *values: Path,
    sets: Mapping[str, str] | None = None,
) -> InstalledAgentChart:
    """``helm template`` of the agent chart in release ``namespace`` (made), and its account,
    RBAC and namespaces applied to ``cluster`` for real, as the cluster admin."""
    objects = render(
        AGENT_CHART, *values, namespace=namespace, release="transporter-agent", sets=sets
    )
    with admin_client(cluster) as dynamic:
        ensure_namespace(dynamic, namespace)
        for obj in install_order(objects):
            if obj["kind"] in RBAC_OBJECTS:
                server_side_apply(dynamic, obj, dry_run=False)
    (account,) = named(objects, "ServiceAccount")
    return InstalledAgentChart(objects, namespace, account["metadata"]["name"])


def can_i_on(cluster: Cluster, subject: Subject, probe: Probe, name: str) -> bool:
    """:func:`tests.bed.rbac.can_i` about the object ``name`` (rules with ``resourceNames``)."""
    return can_i(cluster, subject, probe, name)
