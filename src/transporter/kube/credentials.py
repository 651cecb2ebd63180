"""Where the credentials to reach the cluster come from. Blocking: call it in a worker thread.

With no kubeconfig given: the in-cluster service account (inside a pod), then ``$KUBECONFIG``
(one or more paths separated by ``:``, merged as kubectl merges them; missing ones skipped),
then ``~/.kube/config``. Whatever fails says what was tried, as a :class:`KubeConfigError`.
Read by our own readers (:mod:`~transporter.kube.kubeconfig`,
:mod:`~transporter.kube.incluster`): the official client is not needed, nor loaded.
"""

from __future__ import annotations

import os
from pathlib import Path

import attrs

from transporter.kube import incluster
from transporter.kube.access import ClusterAccess
from transporter.kube.errors import KubeConfigError
from transporter.kube.kubeconfig import read as read_kubeconfig

SERVICE_ACCOUNT = incluster.SERVICE_ACCOUNT
DEFAULT_KUBECONFIG = Path("~/.kube/config")


@attrs.frozen
class LoadedConfig:
    configuration: ClusterAccess
    source: str
    """Where it came from, for messages: ``in-cluster service account`` or ``kubeconfig PATH``."""


def load(kubeconfig: Path | None, *, service_account: Path | None = None) -> LoadedConfig:
    """The cluster to use and how; :class:`KubeConfigError` if there is none.

    ``service_account``: the account's folder (default :data:`SERVICE_ACCOUNT`).
    """
    if kubeconfig is not None:
        path = kubeconfig.expanduser()
        if not path.is_file():
            raise KubeConfigError(f"kubeconfig {path} does not exist or is not a file")
        return LoadedConfig(read_kubeconfig([path]), f"kubeconfig {path}")
    folder = SERVICE_ACCOUNT if service_account is None else service_account
    if incluster.available(folder, os.environ):
        return LoadedConfig(incluster.read(folder, os.environ), incluster.WHERE)
    tried = ["in-cluster service account (not running in a pod)"]
    from_env = os.environ.get("KUBECONFIG", "")
    if from_env:
        listed = [Path(p).expanduser() for p in from_env.split(os.pathsep) if p]
        present = [p for p in listed if p.is_file()]
        if present:
            return LoadedConfig(read_kubeconfig(present), f"$KUBECONFIG ({from_env})")
        tried.append(f"$KUBECONFIG={from_env} (no such file)")
    else:
        tried.append("$KUBECONFIG (not set)")
    default = DEFAULT_KUBECONFIG.expanduser()
    if default.is_file():
        return LoadedConfig(read_kubeconfig([default]), f"kubeconfig {default}")
    tried.append(f"{default} (no such file)")
    raise KubeConfigError("no Kubernetes credentials found; tried " + ", ".join(tried))
