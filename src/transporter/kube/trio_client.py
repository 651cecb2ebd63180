"""HTTP to one API server on trio's own sockets: a request without a trip to a worker thread.

A request through :mod:`~transporter.kube.client` waits twice for a thread (there and back),
each time for the interpreter's lock: on a busy agent about 0.7 ms, as long as the rest of its
work on an event. This client makes the same requests on trio's TCP and TLS streams. It keeps
every promise of that client: our own credentials, one total timeout for connecting, sending
and reading, no redirect followed, answers bounded, kept connections checked before use and a
request sent again at once only where the server cannot have acted on it twice (the rules are
:mod:`~transporter.kube.client`'s). The same limiter bounds requests in flight, and so the
connections kept.

What would block is still done in a thread: loading a client certificate (once per
certificate), credentials not known without a look (a token file not looked at for a second,
an exec plugin's run: :meth:`~transporter.kube.access.Credentials.ready`) and encoding a large
body. An API server reached through a proxy is left to the thread client, which knows how.
"""

from __future__ import annotations

import select
import ssl
import time
from collections.abc import Mapping

import attrs
import trio

from transporter.kube import http1
from transporter.kube.access import Auth, ClientCertificate
from transporter.kube.client import IDEMPOTENT, MAX_ANSWER_BYTES, Answer, HttpClient
from transporter.kube.connection import DEFAULT_PORTS, Route
from transporter.kube.errors import KubeConfigError, KubeRejected, KubeUnavailable, from_library

STREAM_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)
"""What a failed send or receive raises (``BrokenResourceError`` carries the cause)."""


@attrs.define
class _Link:
    """One connection: its stream (TLS or plain TCP) and what was read from it."""

    stream: trio.SSLStream[trio.SocketStream] | trio.SocketStream
    reader: http1.Reader
    socket: trio.socket.SocketType

    def close(self) -> None:
        self.socket.close()  # no close_notify: as the thread client, nothing to wait for

    def dropped(self) -> bool:
        """Whether the server closed it while idle: an idle connection has nothing to read."""
        if self.socket.fileno() < 0 or not self.reader.idle:
            return True
        poller = select.poll()
        poller.register(self.socket.fileno(), select.POLLIN)
        return bool(poller.poll(0))


class _Stale(Exception):
    """A kept connection failed under the request in a way that lets it be sent again."""


class TrioClient:
    """Requests to the API server of ``http`` (whose route, trust and credentials it uses)."""

    def __init__(self, http: HttpClient, *, limiter: trio.CapacityLimiter) -> None:
        self._http = http
        self._limiter = limiter
        self._max_idle = http.max_idle
        self._idle: list[_Link] = []
        self._context: tuple[ClientCertificate | None, ssl.SSLContext | None] | None = None

    def serves(self) -> bool:
        """Whether requests can go this way: not through a proxy (and the route is valid)."""
        try:
            return self._http.route().proxy is None
        except KubeConfigError:
            return False  # the thread client raises it, as before

    async def request(
        self,
        method: str,
        target: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: float,  # noqa: ASYNC109 - as the thread client's, which it stands in for
    ) -> Answer:
        """As :meth:`HttpClient.request <transporter.kube.client.HttpClient.request>`."""
        deadline = time.monotonic() + timeout
        ends = trio.current_time() + timeout
        credentials = self._http.access.credentials
        async with self._limiter:
            auth = credentials.ready()
            if auth is None:  # bounded by the deadline itself, with its own message
                auth = await trio.to_thread.run_sync(
                    credentials.current, deadline, abandon_on_cancel=True
                )
            with trio.move_on_at(ends):
                answer = await self._request(method, target, headers, body, auth)
                if answer.status == 401:
                    await trio.to_thread.run_sync(credentials.refused, auth)
                return answer
        raise from_library(TimeoutError("timed out"))

    async def _request(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes | None,
        auth: Auth,
    ) -> Answer:
        context = await self._context_for(auth.certificate)
        route = self._http.route()
        sent = dict(headers)
        if auth.token:
            sent["Authorization"] = f"Bearer {auth.token}"
        try:
            request = http1.request_bytes(method, route.target(target), _host(route), sent, body)
        except ValueError as exc:
            raise KubeConfigError(f"the request cannot be sent: {exc}") from None
        try:
            return await self._exchange(route, context, method, request)
        except _Stale:
            return await self._exchange(route, context, method, request, fresh=True)

    async def _context_for(self, certificate: ClientCertificate | None) -> ssl.SSLContext | None:
        if self._context is None or self._context[0] != certificate:
            made = await trio.to_thread.run_sync(self._http.server_context, certificate)
            if self._context is not None:
                self.close()  # connections made with the old certificate
            self._context = (certificate, made)
        return self._context[1]

    async def _exchange(
        self,
        route: Route,
        context: ssl.SSLContext | None,
        method: str,
        request: bytes,
        *,
        fresh: bool = False,
    ) -> Answer:
        link = None if fresh else self._take()
        kept = link is not None
        if link is None:
            link = await _connect(route, context, self._http.access.trust.server_name)
        try:
            answer, keep = await _send_and_read(link, method, request, kept=kept)
        except BaseException:
            link.close()
            raise
        if keep and len(self._idle) < self._max_idle:
            self._idle.append(link)
        else:
            link.close()
        return answer

    def _take(self) -> _Link | None:
        while self._idle:
            link = self._idle.pop()
            if not link.dropped():
                return link
            link.close()
        return None

    def close(self) -> None:
        """Close the idle connections (those in use are closed or kept when done)."""
        idle, self._idle = self._idle, []
        for link in idle:
            link.close()


async def _connect(route: Route, context: ssl.SSLContext | None, server_name: str | None) -> _Link:
    try:
        tcp = await trio.open_tcp_stream(route.host, route.port)
    except OSError as exc:
        raise from_library(exc, connecting=True) from None
    if context is None:
        return _Link(tcp, http1.Reader(tcp), tcp.socket)
    stream = trio.SSLStream(
        tcp, context, server_hostname=server_name or route.host, https_compatible=True
    )
    try:
        await stream.do_handshake()
    except STREAM_ERRORS as exc:
        tcp.socket.close()
        raise from_library(exc.__cause__ or exc, connecting=True) from None
    except BaseException:
        tcp.socket.close()
        raise
    return _Link(stream, http1.Reader(stream), tcp.socket)


async def _send_and_read(
    link: _Link, method: str, request: bytes, *, kept: bool
) -> tuple[Answer, bool]:
    """Send ``request`` and read its answer, and whether the connection may be kept.

    A large request is sent while its answer is read: a server may answer before it has read
    all of a body it will not take, then close. A failure that
    :mod:`~transporter.kube.client` says may be sent again raises :class:`_Stale`.
    """
    sending = _Sending(link.stream, request)
    if len(request) <= http1.READ_SIZE:
        await sending.run()  # it fits the socket's buffer: nothing to wait for
        read = await _read(link, method)
    else:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sending.run)
            read = await _read(link, method)
            nursery.cancel_scope.cancel()
    if isinstance(read, KubeRejected):  # over the bound
        raise read
    if isinstance(read, Exception):
        nothing = not link.reader.received
        if kept and nothing and (sending.failed is not None or method in IDEMPOTENT):
            raise _Stale from None
        if isinstance(read, http1.Malformed):
            raise KubeUnavailable(f"connection to the API server failed: {read}") from None
        raise from_library(_cause(sending.failed if nothing and sending.failed else read))
    head, data, keep = read
    fields = head.fields
    answer = Answer(head.status, fields.get("retry-after"), data, fields.get("location"))
    return answer, keep and sending.failed is None


@attrs.define
class _Sending:
    stream: trio.abc.SendStream
    request: bytes
    failed: BaseException | None = None

    async def run(self) -> None:
        try:
            await self.stream.send_all(self.request)
        except STREAM_ERRORS as exc:
            self.failed = exc


async def _read(link: _Link, method: str) -> tuple[http1.Head, bytes, bool] | Exception:
    """The answer, or what ended it (returned, not raised: a nursery would wrap it)."""
    try:
        head = await link.reader.head()
        data, keep = await link.reader.body(head, method, limit=MAX_ANSWER_BYTES)
    except (http1.Ended, http1.Malformed, KubeRejected, *STREAM_ERRORS) as exc:
        return exc
    return head, data, keep


def _cause(exc: BaseException) -> BaseException:
    if isinstance(exc, http1.Ended):
        return ConnectionResetError(str(exc))
    return exc.__cause__ if isinstance(exc, trio.BrokenResourceError) and exc.__cause__ else exc


def _host(route: Route) -> str:
    host = f"[{route.host}]" if ":" in route.host else route.host
    default = DEFAULT_PORTS["https" if route.tls else "http"]
    return host if route.port == default else f"{host}:{route.port}"
