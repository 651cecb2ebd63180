"""The pod's own service account, as client-go's ``rest.InClusterConfig`` finds it. Blocking.

The API server is ``KUBERNETES_SERVICE_HOST``:``KUBERNETES_SERVICE_PORT``, trusted through the
account's ``ca.crt``; the account's ``token`` is read again whenever the kubelet replaces it.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from pathlib import Path

from transporter.kube import tls
from transporter.kube.access import ClusterAccess, ServerTrust, TokenFile
from transporter.kube.errors import KubeConfigError

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
HOST, PORT = "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"
WHERE = "in-cluster service account"


def available(folder: Path, environ: Mapping[str, str]) -> bool:
    """Whether we run in a pod with a service account (as client-go decides it)."""
    return bool(environ.get(HOST)) and bool(environ.get(PORT)) and (folder / "token").exists()


def read(folder: Path, environ: Mapping[str, str]) -> ClusterAccess:
    host, port = environ.get(HOST, ""), environ.get(PORT, "")
    if not host or not port:
        raise KubeConfigError(f"{WHERE}: {HOST} and {PORT} must both be set")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise KubeConfigError(f"{WHERE}: {PORT}={port!r} is not a port number")
    ca = folder / "ca.crt"
    try:
        trust = ServerTrust(ca_pem=ca.read_bytes())
    except OSError as exc:
        raise KubeConfigError(f"{WHERE}: cannot read {ca}: {exc.strerror or exc}") from None
    try:
        tls.context(trust, None)
    except (ssl.SSLError, ValueError) as exc:
        raise KubeConfigError(f"{WHERE}: {ca} holds no usable CA certificate: {exc}") from None
    token = TokenFile(folder / "token", WHERE)
    address = f"[{host}]" if ":" in host else host  # an IPv6 address
    return ClusterAccess(f"https://{address}:{port}", trust, token)
