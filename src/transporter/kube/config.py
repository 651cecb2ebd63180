"""Where the credentials to reach the cluster come from. Blocking: call it in a worker thread.

With no kubeconfig given: the in-cluster service account (inside a pod), then ``$KUBECONFIG``
(one or more paths separated by ``:``), then ``~/.kube/config``. Whatever fails says what was
tried, as a :class:`KubeConfigError`.
"""

from __future__ import annotations

import os
from pathlib import Path

import attrs

from transporter.kube.client import Configuration, load_incluster_config, load_kube_config
from transporter.kube.errors import KubeConfigError

IN_CLUSTER_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
DEFAULT_KUBECONFIG = Path("~/.kube/config")


@attrs.frozen
class LoadedConfig:
    configuration: Configuration
    source: str
    """Where it came from, for messages: ``in-cluster service account`` or ``kubeconfig PATH``."""


def _in_cluster_available() -> bool:
    return (
        bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
        and bool(os.environ.get("KUBERNETES_SERVICE_PORT"))
        and IN_CLUSTER_TOKEN.exists()
    )


def _load_in_cluster() -> LoadedConfig:
    configuration = Configuration()
    try:
        load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except Exception as exc:  # the loader raises ConfigException, OSError, ValueError ...
        raise KubeConfigError(f"in-cluster service account unusable: {exc}") from None
    return LoadedConfig(_finish(configuration), "in-cluster service account")


def _load_file(paths: list[Path], source: str) -> LoadedConfig:
    configuration = Configuration()
    joined = os.pathsep.join(str(path) for path in paths)
    try:
        load_kube_config(  # type: ignore[no-untyped-call]
            config_file=joined, client_configuration=configuration, persist_config=False
        )
    except Exception as exc:  # ConfigException, yaml errors, OSError, KeyError, TypeError ...
        raise KubeConfigError(f"{source} unusable: {type(exc).__name__}: {exc}") from None
    return LoadedConfig(_finish(configuration), source)


def _finish(configuration: Configuration) -> Configuration:
    # urllib3 must not retry on its own: we retry (bounded, with backoff) and time every call.
    configuration.retries = False
    return configuration


def load(kubeconfig: Path | None) -> LoadedConfig:
    """The client configuration to use; :class:`KubeConfigError` if there is none."""
    if kubeconfig is not None:
        path = kubeconfig.expanduser()
        if not path.is_file():
            raise KubeConfigError(f"kubeconfig {path} does not exist or is not a file")
        return _load_file([path], f"kubeconfig {path}")
    if _in_cluster_available():
        return _load_in_cluster()
    tried = ["in-cluster service account (not running in a pod)"]
    from_env = os.environ.get("KUBECONFIG", "")
    if from_env:
        listed = [Path(p).expanduser() for p in from_env.split(os.pathsep) if p]
        present = [p for p in listed if p.is_file()]
        if present:
            return _load_file(present, f"$KUBECONFIG ({from_env})")
        tried.append(f"$KUBECONFIG={from_env} (no such file)")
    else:
        tried.append("$KUBECONFIG (not set)")
    default = DEFAULT_KUBECONFIG.expanduser()
    if default.is_file():
        return _load_file([default], f"kubeconfig {default}")
    tried.append(f"{default} (no such file)")
    raise KubeConfigError("no Kubernetes credentials found; tried " + ", ".join(tried))
