"""Kubeconfig files, read as kubectl reads them, into a :class:`ClusterAccess`. Blocking.

Several files (``$KUBECONFIG``) merge as kubectl merges them: the first file to name a cluster,
user or context wins whole (a later entry of the same name is ignored, even its other keys),
and so does the first file to set ``current-context``. Relative paths in an entry (files,
an exec plugin's command with a ``/``) are relative to the file the entry came from.

Only what the current context uses is checked, and strictly: an unknown key there is an error,
and so is what we do not do (``auth-provider``, basic auth, impersonation in the kubeconfig),
rather than being silently dropped. Every error names the file and the key.
"""

from __future__ import annotations

import base64
import binascii
import json
import ssl
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs
import yaml

from transporter.kube import tls
from transporter.kube.access import (
    Auth,
    ClientCertificate,
    ClusterAccess,
    Credentials,
    Fixed,
    ServerTrust,
    TokenFile,
    header_safe,
)
from transporter.kube.errors import KubeConfigError
from transporter.kube.exec_plugin import ExecCredentials, exec_config
from transporter.kube.proxy import SUPPORTED as PROXY_SCHEMES
from transporter.protocol import yaml_reader

SECTIONS = {"clusters": "cluster", "users": "user", "contexts": "context"}
TOP_KEYS = frozenset(
    {"apiVersion", "kind", "preferences", "current-context", "extensions", *SECTIONS}
)
CLUSTER_KEYS = frozenset(
    {
        "server", "certificate-authority", "certificate-authority-data",
        "insecure-skip-tls-verify", "tls-server-name", "proxy-url", "disable-compression",
        "extensions",
    }
)  # fmt: skip
CONTEXT_KEYS = frozenset({"cluster", "user", "namespace", "extensions"})
USER_KEYS = frozenset(
    {
        "client-certificate", "client-certificate-data", "client-key", "client-key-data",
        "token", "tokenFile", "exec", "extensions",
    }
)  # fmt: skip
REFUSED_USER_KEYS = {
    "auth-provider": "auth providers (oidc, gcp, azure) are deprecated and gone from"
    " Kubernetes' own clients; use an exec credential plugin instead (users[].user.exec:"
    " kubelogin for oidc and azure, gke-gcloud-auth-plugin for gcp)",
    "username": "basic authentication is not supported (Kubernetes removed it in 1.19)",
    "password": "basic authentication is not supported (Kubernetes removed it in 1.19)",
    "as": "impersonation in the kubeconfig is not supported (see --impersonate)",
    "as-uid": "impersonation in the kubeconfig is not supported (see --impersonate)",
    "as-groups": "impersonation in the kubeconfig is not supported (see --impersonate)",
    "as-user-extra": "impersonation in the kubeconfig is not supported (see --impersonate)",
}
EXEC_EXTENSION = "client.authentication.k8s.io/exec"
"""The cluster extension handed to an exec plugin as ``spec.cluster.config``."""


@attrs.frozen
class _Entry:
    """One named cluster, user or context, and the file it came from."""

    body: Mapping[str, Any]
    file: Path
    key: str
    """Where it is in its file: ``users["alice"].user``."""

    def where(self, key: str | None = None) -> str:
        return f"kubeconfig {self.file}: {self.key}" + (f".{key}" if key else "")

    def fail(self, key: str | None, problem: str) -> KubeConfigError:
        return KubeConfigError(f"{self.where(key)}: {problem}")

    def check_keys(self, known: frozenset[str]) -> None:
        for key in self.body:
            if key not in known:
                raise self.fail(str(key), "unknown key")

    def text(self, key: str) -> str | None:
        value = self.body.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise self.fail(key, "must be a string")
        return value

    def flag(self, key: str) -> bool:
        value = self.body.get(key, False)
        if not isinstance(value, bool):
            raise self.fail(key, "must be true or false")
        return value

    def resolve(self, path: str) -> Path:
        return self.file.parent / path  # an absolute path stays as it is

    def data(self, key: str) -> bytes | None:
        """A ``-data`` key (base64) or its file key (a path), decoded or read."""
        inline, named = self.text(key + "-data"), self.text(key)
        if inline is not None and named is not None:
            raise self.fail(None, f"both {key} and {key}-data are set; keep one")
        if inline is not None:
            try:
                return base64.b64decode("".join(inline.split()), validate=True)
            except binascii.Error:
                raise self.fail(key + "-data", "not valid base64") from None
        if named is not None:
            path = self.resolve(named)
            try:
                return path.read_bytes()
            except OSError as exc:
                raise self.fail(key, f"cannot read {path}: {exc.strerror or exc}") from None
        return None


@attrs.frozen
class Merged:
    """The entries of one or more files, merged."""

    files: tuple[Path, ...]
    entries: Mapping[str, Mapping[str, _Entry]]
    """Section (``clusters``) -> name -> entry."""
    current: tuple[str, Path] | None
    """``current-context``, and the file that set it."""


def _load(path: Path) -> Mapping[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise KubeConfigError(f"kubeconfig {path}: cannot read it: {exc}") from None
    try:  # the one bounded reader; it never quotes the text (a kubeconfig holds secrets)
        loaded = yaml_reader.load_documents(text, yaml_reader.Budget())
        documents = [document for document in loaded if document is not None]
    except yaml.YAMLError as exc:
        problem = yaml_reader.yaml_problem(exc)
        raise KubeConfigError(f"kubeconfig {path}: {problem}") from None
    if len(documents) > 1:
        raise KubeConfigError(f"kubeconfig {path}: holds several YAML documents; it is one")
    if not documents:
        return {}  # an empty file is an empty config, as for kubectl
    document = documents[0]
    if not isinstance(document, dict):
        raise KubeConfigError(f"kubeconfig {path}: not a kubeconfig (no mapping at the top)")
    for key in document:
        if key not in TOP_KEYS:
            raise KubeConfigError(f"kubeconfig {path}: {key}: unknown key")
    for key, expected in (("kind", "Config"), ("apiVersion", "v1")):
        if document.get(key) not in (None, expected):
            raise KubeConfigError(f"kubeconfig {path}: {key}: must be {expected}")
    return document


def _entries(path: Path, document: Mapping[str, Any], section: str) -> dict[str, _Entry]:
    body_key = SECTIONS[section]
    items = document.get(section) or []
    if not isinstance(items, list):
        raise KubeConfigError(f"kubeconfig {path}: {section}: must be a list")
    found: dict[str, _Entry] = {}
    for index, item in enumerate(items):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not name:
            raise KubeConfigError(f"kubeconfig {path}: {section}[{index}]: needs a name")
        key = f"{section}[{json.dumps(name)}]"
        extra = set(item) - {"name", body_key}
        if extra:
            raise KubeConfigError(f"kubeconfig {path}: {key}.{sorted(extra)[0]}: unknown key")
        body = item.get(body_key) or {}
        if not isinstance(body, dict):
            raise KubeConfigError(f"kubeconfig {path}: {key}.{body_key}: must be a mapping")
        if name in found:
            raise KubeConfigError(f"kubeconfig {path}: {key}: named twice in this file")
        found[name] = _Entry(body, path, f"{key}.{body_key}")
    return found


def merge(paths: Sequence[Path]) -> Merged:
    """Read and merge ``paths`` (kubectl's rules: the first to set anything wins)."""
    entries: dict[str, dict[str, _Entry]] = {section: {} for section in SECTIONS}
    current: tuple[str, Path] | None = None
    for path in paths:
        document = _load(path)
        for section in SECTIONS:
            for name, entry in _entries(path, document, section).items():
                entries[section].setdefault(name, entry)
        context = document.get("current-context")
        if context is not None and not isinstance(context, str):
            raise KubeConfigError(f"kubeconfig {path}: current-context: must be a string")
        if context and current is None:
            current = (context, path)
    return Merged(tuple(paths), entries, current)


def _files(merged: Merged) -> str:
    return ", ".join(str(path) for path in merged.files)


def _named(merged: Merged, section: str, name: str, asked: str) -> _Entry:
    entry = merged.entries[section].get(name)
    if entry is None:
        where = "it" if len(merged.files) == 1 else f"any of {_files(merged)}"
        raise KubeConfigError(f"{asked}: no {SECTIONS[section]} named {name!r} in {where}")
    return entry


def _cluster_info(cluster: _Entry, ca_pem: bytes | None) -> dict[str, Any]:
    """``spec.cluster`` of an ExecCredential request (``provideClusterInfo``)."""
    info: dict[str, Any] = {"server": cluster.body["server"]}
    for key in ("tls-server-name", "insecure-skip-tls-verify", "proxy-url", "disable-compression"):
        if key in cluster.body:
            info[key] = cluster.body[key]
    if ca_pem is not None:
        info["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    for extension in cluster.body.get("extensions") or []:
        if isinstance(extension, dict) and extension.get("name") == EXEC_EXTENSION:
            info["config"] = extension.get("extension")
    return info


def _server(cluster: _Entry) -> tuple[str, ServerTrust, str | None]:
    cluster.check_keys(CLUSTER_KEYS)
    server = cluster.text("server")
    if server is None:
        raise cluster.fail("server", "missing")
    parts = urlsplit(server)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise cluster.fail("server", f"{server!r} is not an https:// (or http://) URL")
    ca_pem = cluster.data("certificate-authority")
    insecure = cluster.flag("insecure-skip-tls-verify")
    cluster.flag("disable-compression")  # we never ask for compression
    if insecure and ca_pem is not None:
        raise cluster.fail(None, "insecure-skip-tls-verify with a certificate-authority; keep one")
    proxy = cluster.text("proxy-url")
    if proxy is not None and urlsplit(proxy).scheme not in PROXY_SCHEMES:
        scheme = urlsplit(proxy).scheme or "(none)"  # the URL itself may hold a password
        raise cluster.fail("proxy-url", f"scheme {scheme}: only http:// and https:// proxies work")
    trust = ServerTrust(ca_pem, insecure, cluster.text("tls-server-name"))
    try:
        tls.context(trust, None)
    except (ssl.SSLError, ValueError) as exc:
        raise cluster.fail("certificate-authority", f"no usable CA certificate: {exc}") from None
    return server.rstrip("/"), trust, proxy


def _certificate(user: _Entry) -> ClientCertificate | None:
    cert, key = user.data("client-certificate"), user.data("client-key")
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        missing = "client-certificate" if cert is None else "client-key"
        raise user.fail(None, f"{missing} (or {missing}-data) is missing; both are needed")
    certificate = ClientCertificate(cert, key)
    try:
        tls.check_certificate(certificate)
    except (ssl.SSLError, ValueError) as exc:
        raise user.fail(None, f"the client certificate and key cannot be used: {exc}") from None
    return certificate


def _credentials(user: _Entry | None, cluster_info: Mapping[str, Any]) -> Credentials:
    if user is None:
        return Fixed(Auth())  # a context without a user: anonymous, as with kubectl
    for key in user.body:
        if key in REFUSED_USER_KEYS:
            raise user.fail(str(key), REFUSED_USER_KEYS[str(key)])
    user.check_keys(USER_KEYS)
    certificate = _certificate(user)
    given = [key for key in ("token", "tokenFile", "exec") if user.body.get(key) not in (None, "")]
    if len(given) > 1:
        raise user.fail(None, f"{' and '.join(given)} are set; keep one")
    token_file = user.text("tokenFile")
    if token_file is not None:
        return TokenFile(user.resolve(token_file), user.where("tokenFile"), certificate=certificate)
    if "exec" in given:
        body = user.body["exec"]
        if not isinstance(body, dict):
            raise user.fail("exec", "must be a mapping")

        def resolve(command: str) -> str:
            relative = "/" in command and not command.startswith("/")
            return str(user.resolve(command)) if relative else command

        config = exec_config(body, where=user.where("exec"), resolve=resolve, cluster=cluster_info)
        return ExecCredentials(config, certificate=certificate)
    token = user.text("token")
    if token is not None and not header_safe(token):
        raise user.fail("token", "not a bearer token (visible ASCII, no spaces)")
    return Fixed(Auth(token, certificate))


def access(merged: Merged) -> ClusterAccess:
    """The current context's cluster and user."""
    if merged.current is None:
        if len(merged.files) == 1:
            raise KubeConfigError(f"kubeconfig {merged.files[0]}: current-context is not set")
        raise KubeConfigError(f"none of the kubeconfig files {_files(merged)} sets current-context")
    name, where = merged.current
    context = _named(merged, "contexts", name, f"kubeconfig {where}: current-context")
    context.check_keys(CONTEXT_KEYS)
    cluster_name = context.text("cluster")
    if cluster_name is None:
        raise context.fail("cluster", "missing")
    cluster = _named(merged, "clusters", cluster_name, context.where("cluster"))
    server, trust, proxy = _server(cluster)
    user_name = context.text("user")
    user = None if user_name is None else _named(merged, "users", user_name, context.where("user"))
    credentials = _credentials(user, _cluster_info(cluster, trust.ca_pem))
    return ClusterAccess(server, trust, credentials, proxy)


def read(paths: Sequence[Path]) -> ClusterAccess:
    """The cluster and credentials of the current context of ``paths`` merged."""
    return access(merge(paths))
