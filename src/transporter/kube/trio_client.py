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
    certificate: ClientCertificate | None
    """Our client certificate when it was made."""

    def close(self) -> None:
        self.socket.close()  # no close_notify: as the thread client, nothing to wait for

    def dropped(self) -> bool:
        """Whether the server closed it while idle, or sent what nobody asked for: an idle
        connection has nothing to read, in our buffer, TLS's or the socket's."""
        if self.socket.fileno() < 0 or not self.reader.idle or _tls_pending(self.stream):
            return True
        poller = select.poll()
        poller.register(self.socket.fileno(), select.POLLIN)
        return bool(poller.poll(0))


def _tls_pending(stream: trio.abc.Stream) -> bool:
    """Whether trio's TLS stream holds bytes received and not yet read (trio says so nowhere
    public: its incoming buffer and the TLS object's; where they are not found, the link is
    not kept, so the keep-alive tests of tests/kube/test_keepalive.py fail)."""
    if not isinstance(stream, trio.SSLStream):
        return False
    incoming = getattr(stream, "_incoming", None)
    tls = getattr(stream, "_ssl_object", None)
    if not isinstance(incoming, ssl.MemoryBIO) or not isinstance(tls, ssl.SSLObject):
        return True
    return bool(incoming.pending or tls.pending())


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
        self._closed = False
        self._making = trio.Lock()
        """One TLS context made at a time (loading a certificate is not cheap)."""

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
            connecting = _Connecting()
            with trio.move_on_at(ends):
                answer = await self._request(method, target, headers, body, auth, connecting)
                if answer.status == 401:
                    await trio.to_thread.run_sync(credentials.refused, auth, abandon_on_cancel=True)
                return answer
        raise from_library(TimeoutError("timed out"), connecting=connecting.now)

    async def _request(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes | None,
        auth: Auth,
        connecting: _Connecting,
    ) -> Answer:
        certificate = auth.certificate
        context = await self._context_for(certificate)
        route = self._http.route()
        sent = dict(headers)
        if auth.token:
            sent["Authorization"] = f"Bearer {auth.token}"
        try:
            request = http1.request_bytes(method, route.target(target), _host(route), sent, body)
        except ValueError as exc:
            raise KubeConfigError(f"the request cannot be sent: {exc}") from None
        try:
            return await self._exchange(route, certificate, context, method, request, connecting)
        except _Stale:
            return await self._exchange(
                route, certificate, context, method, request, connecting, fresh=True
            )

    async def _context_for(self, certificate: ClientCertificate | None) -> ssl.SSLContext | None:
        if self._context is not None and self._context[0] == certificate:
            return self._context[1]
        async with self._making:
            if self._context is None or self._context[0] != certificate:
                made = await trio.to_thread.run_sync(self._http.server_context, certificate)
                self._context = (certificate, made)  # links made with the old one not kept
            return self._context[1]

    async def _exchange(
        self,
        route: Route,
        certificate: ClientCertificate | None,
        context: ssl.SSLContext | None,
        method: str,
        request: bytes,
        connecting: _Connecting,
        *,
        fresh: bool = False,
    ) -> Answer:
        link = None if fresh else self._take(certificate)
        kept = link is not None
        if link is None:
            connecting.now = True
            server_name = self._http.access.trust.server_name
            link = await _connect(route, context, server_name, certificate)
            connecting.now = False
        try:
            answer, keep = await _send_and_read(link, method, request, kept=kept)
        except BaseException:
            link.close()
            raise
        current = self._context is not None and self._context[0] == link.certificate
        if keep and current and not self._closed and len(self._idle) < self._max_idle:
            self._idle.append(link)
        else:  # or made with a client certificate since replaced
            link.close()
        return answer

    def _take(self, certificate: ClientCertificate | None) -> _Link | None:
        while self._idle:
            link = self._idle.pop()
            if link.certificate == certificate and not link.dropped():
                return link
            link.close()
        return None

    def close(self) -> None:
        """Close the idle connections; those in use are closed when they are done."""
        self._closed = True
        idle, self._idle = self._idle, []
        for link in idle:
            link.close()


@attrs.define
class _Connecting:
    """Whether the request is connecting now (for the message if its time runs out)."""

    now: bool = False


async def _connect(
    route: Route,
    context: ssl.SSLContext | None,
    server_name: str | None,
    certificate: ClientCertificate | None,
) -> _Link:
    try:
        tcp = await trio.open_tcp_stream(route.host, route.port)
    except OSError as exc:  # trio's own message, the first attempt's error under it
        raise from_library(_first_error(exc), connecting=True) from None
    if context is None:
        return _Link(tcp, http1.Reader(tcp), tcp.socket, certificate)
    try:
        stream = trio.SSLStream(
            tcp, context, server_hostname=server_name or route.host, https_compatible=True
        )
        await stream.do_handshake()
    except ValueError as exc:  # a server name TLS cannot ask for
        tcp.socket.close()
        raise KubeConfigError(f"tls-server-name {server_name!r}: {exc}") from None
    except STREAM_ERRORS as exc:
        tcp.socket.close()
        raise from_library(exc.__cause__ or exc, connecting=True) from None
    except BaseException:
        tcp.socket.close()
        raise
    return _Link(stream, http1.Reader(stream), tcp.socket, certificate)


def _first_error(exc: OSError) -> BaseException:
    cause = exc.__cause__
    if isinstance(cause, BaseExceptionGroup) and cause.exceptions:
        return cause.exceptions[0]
    return cause if isinstance(cause, OSError) else exc


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
    return answer, keep and sending.done  # not a body cut short by an early answer


@attrs.define
class _Sending:
    stream: trio.abc.SendStream
    request: bytes
    failed: BaseException | None = None
    done: bool = False

    async def run(self) -> None:
        try:
            await self.stream.send_all(self.request)
            self.done = True
        except STREAM_ERRORS as exc:
            self.failed = exc


async def _read(link: _Link, method: str) -> tuple[http1.Head, bytes, bool] | Exception:
    """The answer, or what ended it (returned, not raised: a nursery would wrap it)."""
    try:
        head = await link.reader.head()
        data, keep = await link.reader.body(head, method, limit=MAX_ANSWER_BYTES)
    except (http1.Ended, http1.Malformed, KubeRejected, *STREAM_ERRORS) as exc:
        return exc
    except Exception as exc:
        return http1.Malformed(f"{type(exc).__name__}: {exc}")
    return head, data, keep


def _cause(exc: BaseException) -> BaseException:
    if isinstance(exc, http1.Ended):
        return ConnectionResetError(str(exc))
    return exc.__cause__ if isinstance(exc, trio.BrokenResourceError) and exc.__cause__ else exc


def _host(route: Route) -> str:
    host = f"[{route.host}]" if ":" in route.host else route.host
    default = DEFAULT_PORTS["https" if route.tls else "http"]
    return host if route.port == default else f"{host}:{route.port}"
