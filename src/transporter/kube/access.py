"""What reaching one API server takes: its address, how to trust it, and who we are.

Made by :mod:`~transporter.kube.kubeconfig` or :mod:`~transporter.kube.incluster`, used by
:mod:`~transporter.kube.client` for every request. Credentials that change while the agent runs
(a rotated token file, an exec plugin's expiring token) are asked for again at each request.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Protocol

import attrs

from transporter.kube.errors import KubeConfigError

log = logging.getLogger(__name__)

LOOK_EVERY = 1.0
"""Seconds a token file's last look stands for requests made without a thread: a rotated token
is seen within it (the kubelet rotates well before the old one expires), a refused one at once."""


@attrs.frozen
class ClientCertificate:
    """A client certificate (with any intermediates) and its private key, both PEM."""

    cert_pem: bytes = attrs.field(repr=False)
    key_pem: bytes = attrs.field(repr=False)


@attrs.frozen
class Auth:
    """What one request presents: a bearer token, a client certificate, both or neither."""

    token: str | None = attrs.field(default=None, repr=False)
    certificate: ClientCertificate | None = None


def header_safe(token: str) -> bool:
    """Whether ``token`` can be sent as a bearer token: visible ASCII, no spaces."""
    return bool(token) and all("!" <= char <= "~" for char in token)


class Credentials(Protocol):
    """Where a request's :class:`Auth` comes from. Blocking: called in worker threads."""

    def current(self, deadline: float) -> Auth:
        """The credentials to use now; ``deadline`` (:func:`time.monotonic`) bounds any wait.

        Raises :class:`KubeConfigError` (they cannot be had) or :class:`KubeUnavailable`
        (not in time).
        """
        ...

    def refused(self, auth: Auth) -> None:
        """The API server answered 401 to ``auth``: do not use it again without a fresh look."""
        ...

    def ready(self) -> Auth | None:
        """The credentials to use now if they are known without any wait (no file read, no
        plugin run, no lock held elsewhere); ``None``: ask :meth:`current`, in a thread."""
        ...


@attrs.frozen
class Fixed:
    """Credentials written in the kubeconfig itself (or none: anonymous)."""

    auth: Auth

    def current(self, deadline: float) -> Auth:
        return self.auth

    def refused(self, auth: Auth) -> None:
        pass

    def ready(self) -> Auth:
        return self.auth


class TokenFile:
    """A bearer token read from a file, read again whenever the file changes.

    A service account's projected token is replaced by the kubelet (an atomic swap of a
    symlink) well before it expires; a kubeconfig's ``tokenFile`` may be rotated the same way.
    ``os.stat`` per request (in a worker thread) costs microseconds and sees every swap at once;
    a request made without a thread (:meth:`ready`) uses the token looked at within the last
    :data:`LOOK_EVERY` seconds, and one refused (401) is never used again without a look.
    """

    def __init__(
        self, path: Path, where: str, *, certificate: ClientCertificate | None = None
    ) -> None:
        self.path = path
        self.where = where
        """What names the file in messages (the kubeconfig key, or the service account)."""
        self._certificate = certificate
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int, int] | None = None
        self._auth: Auth | None = None
        self._looked = 0.0
        """When the file was last looked at (:func:`time.monotonic`)."""
        self.current(0.0)  # an unreadable file is the operator's error, at load

    def current(self, deadline: float) -> Auth:
        with self._lock:
            try:
                info = os.stat(self.path)
                seen = (info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size)
                if seen != self._seen or self._auth is None:
                    token = self.path.read_text(encoding="utf-8").strip()
                    if not header_safe(token):
                        raise ValueError("empty" if not token else "more than a token")
                    self._auth = Auth(token, self._certificate)
                    self._seen = seen
                self._looked = time.monotonic()
            except (OSError, ValueError) as exc:  # ValueError: UnicodeDecodeError too
                why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                if self._auth is None:
                    raise KubeConfigError(f"{self.where}: cannot read {self.path}: {why}") from None
                # Caught mid-rotation: the last token is most likely still valid.
                log.warning("token file %s: %s; using the last token read", self.path, why)
            return self._auth

    def refused(self, auth: Auth) -> None:
        with self._lock:
            self._seen = None
            self._looked = 0.0

    def ready(self) -> Auth | None:
        if not self._lock.acquire(blocking=False):
            return None
        try:
            fresh = self._seen is not None and time.monotonic() - self._looked < LOOK_EVERY
            return self._auth if fresh else None
        finally:
            self._lock.release()


@attrs.frozen
class ServerTrust:
    """How the API server's certificate is checked."""

    ca_pem: bytes | None = attrs.field(default=None, repr=False)
    """The CAs to trust (PEM); ``None``: the system's."""
    insecure: bool = False
    """``insecure-skip-tls-verify``: no check at all."""
    server_name: str | None = None
    """``tls-server-name``: the name to ask for (SNI) and check, instead of the URL's host."""


@attrs.frozen
class ClusterAccess:
    """One API server and how to talk to it."""

    server: str
    """Its URL, without a trailing ``/`` (it may have a path: a proxy in front of it)."""
    trust: ServerTrust
    credentials: Credentials
    proxy: str | None = None
    """``proxy-url``; ``None``: the ``HTTPS_PROXY`` / ``NO_PROXY`` environment decides."""
