"""Exec credential plugins (``users[].user.exec``): a command that prints an ExecCredential.

As client-go runs them (``client.authentication.k8s.io/v1`` and ``v1beta1``): the command with
its ``args`` and the agent's environment plus ``env``; ``KUBERNETES_EXEC_INFO`` holds the
request (``interactive`` is false: the agent has no terminal, so ``interactiveMode: Always`` is
refused at load, and stdin is empty) and, with ``provideClusterInfo``, the cluster. Its token or
client certificate is used until its ``expirationTimestamp`` (forever without one), or until
the API server answers 401 to it; then the command runs again.

It runs in the worker thread of the request that needs it, bounded by what is left of that
request's timeout (then killed): one run at a time, the other requests wait for its answer.
"""

from __future__ import annotations

import datetime
import json
import os
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from transporter.kube.access import Auth, ClientCertificate, header_safe
from transporter.kube.errors import KubeConfigError, KubeUnavailable
from transporter.kube.tls import check_certificate

API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")
INTERACTIVE_MODES = ("Never", "IfAvailable", "Always")
EXEC_KEYS = frozenset(
    {"command", "args", "env", "apiVersion", "installHint", "provideClusterInfo", "interactiveMode"}
)
"""The keys of ``users[].user.exec``."""
MAX_STDERR = 500
"""Characters of the plugin's stderr quoted when it fails."""


@attrs.frozen
class ExecConfig:
    command: str
    """As given, or made absolute: a relative path with a ``/`` is relative to its kubeconfig."""
    args: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = attrs.field(repr=False)
    api_version: str
    where: str
    """Names it in messages: the kubeconfig and the user."""
    cluster: Mapping[str, Any] | None = None
    """``spec.cluster`` of the request (``provideClusterInfo``), or ``None``."""
    install_hint: str = ""


class ExecCredentials:
    """The :class:`~transporter.kube.access.Credentials` of an exec plugin."""

    def __init__(self, config: ExecConfig, *, certificate: ClientCertificate | None = None) -> None:
        self.config = config
        self._certificate = certificate
        """A client certificate of the kubeconfig itself, sent beside the plugin's token."""
        self._lock = threading.Lock()
        self._auth: Auth | None = None
        self._expires: float | None = None

    def current(self, deadline: float) -> Auth:
        if not self._lock.acquire(timeout=max(deadline - time.monotonic(), 0.0)):
            raise KubeUnavailable(f"{self._name()}: still running after the request's timeout")
        try:
            if self._auth is None or (self._expires is not None and time.time() >= self._expires):
                self._auth, self._expires = self._run(deadline)
            return self._auth
        finally:
            self._lock.release()

    def refused(self, auth: Auth) -> None:
        with self._lock:
            if self._auth is auth:
                self._auth = None

    def ready(self) -> Auth | None:
        if not self._lock.acquire(blocking=False):  # the plugin runs now
            return None
        try:
            if self._expires is not None and time.time() >= self._expires:
                return None
            return self._auth
        finally:
            self._lock.release()

    def _name(self) -> str:
        return f"exec plugin {self.config.command!r} ({self.config.where})"

    def _run(self, deadline: float) -> tuple[Auth, float | None]:
        config = self.config
        spec: dict[str, Any] = {"interactive": False}
        if config.cluster is not None:
            spec["cluster"] = dict(config.cluster)
        info = {"apiVersion": config.api_version, "kind": "ExecCredential", "spec": spec}
        env = {**os.environ, **dict(config.env), "KUBERNETES_EXEC_INFO": json.dumps(info)}
        timeout = max(deadline - time.monotonic(), 0.001)
        try:
            done = subprocess.run(  # the operator's command, as kubectl runs it
                [config.command, *config.args],
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise KubeUnavailable(f"{self._name()} did not finish within {timeout:.3g} s") from None
        except OSError as exc:
            hint = f" ({config.install_hint.strip()})" if config.install_hint.strip() else ""
            raise KubeConfigError(
                f"{self._name()} cannot run: {exc.strerror or exc}{hint}"
            ) from None
        if done.returncode != 0:
            said = done.stderr.decode("utf-8", "replace").strip()[-MAX_STDERR:]
            raise KubeConfigError(
                f"{self._name()} exited with {done.returncode}" + (f": {said}" if said else "")
            )
        return self._read(done.stdout)

    def _read(self, out: bytes) -> tuple[Auth, float | None]:
        def bad(problem: str) -> KubeConfigError:
            return KubeConfigError(f"{self._name()} printed {problem}")

        try:
            credential: Any = json.loads(out)
        except ValueError:
            raise bad("something that is not JSON") from None
        if not isinstance(credential, dict) or credential.get("kind") != "ExecCredential":
            raise bad("no ExecCredential")
        if credential.get("apiVersion") != self.config.api_version:
            raise bad(
                f"apiVersion {credential.get('apiVersion')!r}, not {self.config.api_version!r}"
            )
        status = credential.get("status")
        if not isinstance(status, dict):
            raise bad("an ExecCredential without status")
        token = status.get("token") or None
        cert, key = status.get("clientCertificateData"), status.get("clientKeyData")
        if token is not None and not (isinstance(token, str) and header_safe(token)):
            raise bad("a status.token that is not a bearer token (visible ASCII, no spaces)")
        certificate = self._certificate
        if cert or key:
            if not (isinstance(cert, str) and isinstance(key, str) and cert and key):
                raise bad("only one of status.clientCertificateData and status.clientKeyData")
            if certificate is not None:
                raise bad("a client certificate, and the kubeconfig's user has one too")
            certificate = ClientCertificate(cert.encode(), key.encode())
            try:
                check_certificate(certificate)
            except (ssl.SSLError, ValueError) as exc:
                raise bad(f"a client certificate and key that cannot be used: {exc}") from None
        if token is None and certificate is None:
            raise bad("neither status.token nor status.clientCertificateData")
        return Auth(token, certificate), self._expiry(status.get("expirationTimestamp"), bad)

    @staticmethod
    def _expiry(value: object, bad: Callable[[str], KubeConfigError]) -> float | None:
        if value is None or value == "":
            return None
        try:
            when = datetime.datetime.fromisoformat(str(value))
        except ValueError:
            raise bad(f"status.expirationTimestamp {value!r}, not an RFC 3339 time") from None
        if when.tzinfo is None:
            raise bad(f"status.expirationTimestamp {value!r} without a time zone")
        return when.timestamp()


def exec_config(
    body: Mapping[str, Any],
    *,
    where: str,
    resolve: Callable[[str], str],
    cluster: Mapping[str, Any] | None,
) -> ExecConfig:
    """Check ``users[].user.exec`` (``body``); ``where`` names it (``kubeconfig F:
    users["u"].user.exec``), ``resolve`` makes a relative command absolute, ``cluster`` is the
    cluster given to a plugin that asks for it."""

    def fail(key: str, problem: str) -> KubeConfigError:
        return KubeConfigError(f"{where}.{key}: {problem}")

    for key in body:
        if key not in EXEC_KEYS:
            raise fail(str(key), "unknown key")
    command = body.get("command")
    if not isinstance(command, str) or not command:
        raise fail("command", "missing")
    api_version = body.get("apiVersion")
    if api_version not in API_VERSIONS:
        raise fail("apiVersion", f"{api_version!r}: must be one of {', '.join(API_VERSIONS)}")
    mode = body.get("interactiveMode")
    if mode is None and api_version == API_VERSIONS[0]:
        raise fail("interactiveMode", f"missing (required by {api_version})")
    if mode is not None and mode not in INTERACTIVE_MODES:
        raise fail("interactiveMode", f"{mode!r}: must be one of {', '.join(INTERACTIVE_MODES)}")
    if mode == "Always":
        raise fail("interactiveMode", "Always needs a terminal, and the agent has none")
    args = body.get("args") or []
    if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
        raise fail("args", "must be a list of strings")
    pairs = _env_pairs(body.get("env") or [], fail)
    hint = body.get("installHint") or ""
    provide = body.get("provideClusterInfo", False)
    if not isinstance(hint, str) or not isinstance(provide, bool):
        raise fail("installHint" if not isinstance(hint, str) else "provideClusterInfo", "bad type")
    return ExecConfig(
        command=resolve(command),
        args=tuple(args),
        env=pairs,
        api_version=str(api_version),
        where=where,
        cluster=cluster if provide else None,
        install_hint=hint,
    )


def _env_pairs(
    env: object, fail: Callable[[str, str], KubeConfigError]
) -> tuple[tuple[str, str], ...]:
    """``env``'s ``{name, value}`` items as pairs."""
    if not isinstance(env, list):
        raise fail("env", "must be a list of {name, value}")
    pairs: list[tuple[str, str]] = []
    for index, item in enumerate(env):
        if not (
            isinstance(item, dict)
            and set(item) == {"name", "value"}
            and isinstance(item["name"], str)
            and isinstance(item["value"], str)
        ):
            raise fail(f"env[{index}]", "must be {name, value}, both strings")
        pairs.append((item["name"], item["value"]))
    return tuple(pairs)
