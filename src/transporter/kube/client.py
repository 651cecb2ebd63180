"""HTTP to one API server on :mod:`http.client`: blocking, so called only from worker threads.

It serves an API server reached through a proxy (:mod:`~transporter.kube.connection` knows
tunnels and forward proxies); the others are served on trio's sockets by
:mod:`~transporter.kube.trio_client`, which keeps the same promises and uses this client's
route, trust and TLS contexts.

Every request carries our own credentials (:mod:`~transporter.kube.access`), ends within its
total timeout (each connect, send and read waits only for what is left of it), is never
redirected (a 3xx is an error: a redirect could carry the token elsewhere), and fails only with
our errors. Connections are kept for the next request (:mod:`~transporter.kube.pool`).

Retries are the transport's (:mod:`~transporter.kube.transport`: bounded, with backoff), but
for one case: a connection kept from an earlier request that the server has closed since. Most
are seen closed before use and never tried (:mod:`~transporter.kube.pool`). For the remaining
race, the server closing it just as our request goes out, the request is sent once more at
once, on a new connection, only when the server cannot have acted on it twice:

- sending failed (reset, broken pipe) and no answer came: the server never had the whole
  request. Any method.
- the connection ended (or was reset) with no answer, and the method is idempotent (GET, HEAD,
  OPTIONS, PUT, DELETE; RFC 9110 9.2.2): doing it twice is doing it once.

A POST or PATCH sent whole may have been acted on: it fails with :class:`KubeUnavailable`, and
the transport's retry policy decides, with its backoff. A new connection is never retried here.
"""

from __future__ import annotations

import http.client
import ssl
import threading
import time
from collections.abc import Mapping

import attrs

from transporter.kube import tls
from transporter.kube.access import Auth, ClientCertificate, ClusterAccess
from transporter.kube.connection import Connection, Route
from transporter.kube.errors import (
    LIBRARY_ERRORS,
    KubeConfigError,
    KubeRejected,
    KubeUnavailable,
    from_library,
)
from transporter.kube.pool import Pool
from transporter.kube.proxy import parse_proxy, proxy_for

READ_SIZE = 64 * 1024
MAX_ANSWER_BYTES = 128 * 1024 * 1024
"""The largest answer read from the API server (a cluster-wide list of bindings, say): past it
the request fails rather than the agent's memory."""
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
SEND_FAILED = (ConnectionError, ssl.SSLEOFError, ssl.SSLZeroReturnError)
"""What sending on a connection the server has closed raises."""
NO_ANSWER = (http.client.RemoteDisconnected, ConnectionResetError)
"""What waiting for the answer raises when the connection ended before any byte of it."""


@attrs.frozen
class Answer:
    status: int
    retry_after: str | None
    """The ``Retry-After`` header, as sent."""
    data: bytes
    location: str | None = None
    """The ``Location`` header (a redirect's)."""


@attrs.frozen
class _Request:
    method: str
    target: str
    headers: Mapping[str, str]
    body: bytes | None


class _Stale(Exception):
    """A kept connection failed under the request in a way that lets it be sent again."""


class HttpClient:
    """Connections to one API server, shared by the worker threads of its transport.

    The pool is made at the first request (in a worker thread: loading certificates is file
    I/O), and made anew when the client certificate changes (an exec plugin's new one).
    """

    def __init__(self, access: ClusterAccess, *, max_idle: int) -> None:
        self.access = access
        self.max_idle = max_idle
        """Connections kept between requests, at most."""
        self._lock = threading.Lock()
        self._pool: tuple[ClientCertificate | None, Pool] | None = None
        self._route: Route | None = None

    @property
    def server(self) -> str:
        return self.access.server

    def route(self) -> Route:
        """Where requests go; raises :class:`KubeConfigError` for an unusable server or proxy."""
        if self._route is None:
            server = self.access.server
            proxy = proxy_for(server, self.access.proxy)
            try:
                through = parse_proxy(proxy) if proxy else None
            except ValueError as exc:
                raise KubeConfigError(f"proxy for {server}: {exc}") from None
            try:
                self._route = Route.to(server, through)
            except ValueError as exc:
                raise KubeConfigError(f"server {server}: {exc}") from None
        return self._route

    def _pool_for(self, certificate: ClientCertificate | None) -> Pool:
        with self._lock:
            if self._pool is not None and self._pool[0] == certificate:
                return self._pool[1]
            old, self._pool = self._pool, (certificate, self._new_pool(certificate))
            pool = self._pool[1]
        if old is not None:
            old[1].close()  # connections in use are closed when they come back
        return pool

    def server_context(self, certificate: ClientCertificate | None) -> ssl.SSLContext | None:
        """TLS to the API server with ``certificate`` (``None``: plain HTTP). Blocking: the
        certificate is loaded from a file; raises :class:`KubeConfigError` if it cannot be."""
        if not self.route().tls:
            return None
        try:
            return tls.context(self.access.trust, certificate)
        except (ssl.SSLError, ValueError) as exc:
            raise KubeConfigError(f"the client certificate cannot be used: {exc}") from None

    def _new_pool(self, certificate: ClientCertificate | None) -> Pool:
        route, trust = self.route(), self.access.trust
        server_tls = self.server_context(certificate)
        try:
            proxy_tls = tls.proxy_context(trust) if route.proxy and route.proxy.tls else None
        except (ssl.SSLError, ValueError) as exc:
            raise KubeConfigError(f"the client certificate cannot be used: {exc}") from None

        def make() -> Connection:
            return Connection(
                route, server_tls=server_tls, server_name=trust.server_name, proxy_tls=proxy_tls
            )

        return Pool(make, max_idle=self.max_idle)

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
        pool = self._pool_for(auth.certificate)
        route = self.route()
        sent = {**headers, **route.proxy_headers()}
        if auth.token:
            sent["Authorization"] = f"Bearer {auth.token}"
        request = _Request(method, route.target(target), sent, body)
        if time.monotonic() >= deadline:
            raise KubeUnavailable(f"getting the credentials took the whole {timeout:g} s")
        try:
            try:
                answer = _exchange(pool, request, deadline)
            except _Stale:
                answer = _exchange(pool, request, deadline, fresh=True)
        except LIBRARY_ERRORS as exc:
            raise from_library(exc) from None
        if answer.status == 401:
            credentials.refused(auth)
        return answer

    def close(self) -> None:
        """Close idle connections (requests still running end with their own timeout)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool[1].close()


def _exchange(pool: Pool, request: _Request, deadline: float, *, fresh: bool = False) -> Answer:
    """``request`` on a kept connection (else a new one), given back after a whole answer.

    Raises :class:`_Stale` when a kept connection failed as the module says may be retried.
    """
    connection, kept = (pool.new(), False) if fresh else pool.take()
    try:
        if not kept:
            _connect(connection, deadline)
        response = _send(connection, request, deadline, kept=kept)
        answer = _read(connection, response, deadline)
    except BaseException:
        connection.close()
        raise
    if response.will_close:
        connection.close()
    else:
        pool.give_back(connection)
    return answer


def _send(
    connection: Connection, request: _Request, deadline: float, *, kept: bool
) -> http.client.HTTPResponse:
    """Send ``request`` and read the head of its answer.

    A server may answer before it has read the whole request, then close (a body too large):
    when sending fails, that answer is read all the same (as urllib3 does).
    """
    unsent: OSError | None = None
    try:
        _wait_at_most(connection, deadline)
        connection.request(
            request.method, request.target, body=request.body, headers=request.headers
        )
    except SEND_FAILED as exc:
        unsent = exc
    try:
        _wait_at_most(connection, deadline)
        return connection.getresponse()
    except LIBRARY_ERRORS as exc:
        if unsent is None and not isinstance(exc, NO_ANSWER):
            raise
        if kept and (unsent is not None or request.method in IDEMPOTENT):
            raise _Stale from None
        raise (unsent or exc) from None


def _connect(connection: Connection, deadline: float) -> None:
    connection.timeout = _left(deadline)
    try:
        connection.connect()
    except LIBRARY_ERRORS as exc:
        proxy = connection.route.proxy
        failed_at = None if proxy is None or connection.past_proxy else proxy.name
        raise from_library(exc, connecting=True, proxy=failed_at) from None


def _read(connection: Connection, response: http.client.HTTPResponse, deadline: float) -> Answer:
    """The whole body (chunked or not), each read waiting only for what is left."""
    chunks: list[bytes] = []
    size = 0
    while True:
        _wait_at_most(connection, deadline)
        chunk = response.read1(READ_SIZE)
        if not chunk:
            break
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise KubeRejected(
                f"the API server's answer is over {MAX_ANSWER_BYTES} bytes: not read",
                code=response.status,
            )
        chunks.append(chunk)
    response.close()
    return Answer(
        response.status,
        response.getheader("Retry-After"),
        b"".join(chunks),
        response.getheader("Location"),
    )


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the request's time is up")
    return left


def _wait_at_most(connection: Connection, deadline: float) -> None:
    if connection.sock:
        connection.sock.settimeout(_left(deadline))
