"""HTTP to one API server over urllib3: blocking, so called only from worker threads.

urllib3 is what the official client uses under its generated classes; we use it directly with
our own credentials (:mod:`~transporter.kube.access`). Every request carries a total timeout,
is never retried or redirected by urllib3 (we retry, bounded, in :mod:`~transporter.kube.
transport`; a redirect could carry the token elsewhere), and fails only with our errors.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs
import urllib3

from transporter.kube import tls
from transporter.kube.access import Auth, ClientCertificate, ClusterAccess
from transporter.kube.errors import (
    LIBRARY_ERRORS,
    KubeConfigError,
    KubeUnavailable,
    from_library,
)
from transporter.kube.proxy import SUPPORTED as PROXY_SCHEMES
from transporter.kube.proxy import proxy_for


@attrs.frozen
class Answer:
    status: int
    retry_after: str | None
    """The ``Retry-After`` header, as sent."""
    data: bytes


class HttpClient:
    """Connections to one API server, shared by the worker threads of its transport.

    The pool is made at the first request (in a worker thread: loading certificates is file
    I/O), and made anew when the client certificate changes (an exec plugin's new one).
    """

    def __init__(self, access: ClusterAccess, *, maxsize: int) -> None:
        self.access = access
        self._maxsize = maxsize
        self._lock = threading.Lock()
        self._pool: tuple[ClientCertificate | None, urllib3.PoolManager] | None = None

    @property
    def server(self) -> str:
        return self.access.server

    def _pool_for(self, certificate: ClientCertificate | None) -> urllib3.PoolManager:
        with self._lock:
            if self._pool is not None and self._pool[0] == certificate:
                return self._pool[1]
            old, self._pool = self._pool, (certificate, self._new_pool(certificate))
            if old is not None:
                old[1].clear()  # connections in use are closed when they come back
            return self._pool[1]

    def _new_pool(self, certificate: ClientCertificate | None) -> urllib3.PoolManager:
        trust = self.access.trust
        try:
            context = tls.context(trust, certificate)
        except (ssl.SSLError, ValueError) as exc:
            raise KubeConfigError(f"the client certificate cannot be used: {exc}") from None
        options: dict[str, Any] = {
            "maxsize": self._maxsize,
            "block": False,
            "retries": False,
            "ssl_context": context,
            "cert_reqs": ssl.CERT_NONE if trust.insecure else ssl.CERT_REQUIRED,
        }
        if trust.insecure:
            options["assert_hostname"] = False
        if trust.server_name:
            options["server_hostname"] = trust.server_name
        proxy = proxy_for(self.access.server, self.access.proxy)
        if proxy is None:
            return urllib3.PoolManager(num_pools=1, **options)
        if urlsplit(proxy).scheme not in PROXY_SCHEMES:
            raise KubeConfigError(f"proxy {proxy}: only http:// and https:// proxies work")
        return urllib3.ProxyManager(proxy, num_pools=1, **options)

    def request(
        self,
        method: str,
        target: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: float,
    ) -> Answer:
        """One request (``target``: path and query); the credentials of the moment are added.

        Raises :class:`KubeUnavailable` (no answer), or :class:`KubeConfigError` (no
        credentials could be had).
        """
        deadline = time.monotonic() + timeout
        credentials = self.access.credentials
        auth: Auth = credentials.current(deadline)
        sent = dict(headers)
        if auth.token:
            sent["Authorization"] = f"Bearer {auth.token}"
        try:
            pool = self._pool_for(auth.certificate)
            left = deadline - time.monotonic()
            if left <= 0:
                raise KubeUnavailable(f"getting the credentials took the whole {timeout:g} s")
            response = pool.request(
                method,
                self.access.server + target,
                body=body,
                headers=sent,
                timeout=urllib3.Timeout(total=left),
                retries=False,
                redirect=False,
            )
        except LIBRARY_ERRORS as exc:
            raise from_library(exc) from None
        if response.status == 401:
            credentials.refused(auth)
        return Answer(response.status, response.headers.get("Retry-After"), response.data)

    def close(self) -> None:
        """Close idle connections (requests still running end with their own timeout)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool[1].clear()
