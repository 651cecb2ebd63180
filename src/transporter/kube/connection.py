"""One HTTP/1.1 connection to the API server, on :mod:`http.client`, direct or through a proxy.

Its layers, each only when needed: TCP to the server or the proxy; TLS to an ``https://`` proxy;
``CONNECT`` through the proxy to an ``https://`` server; TLS to the server (inside the proxy's
TLS: :mod:`~transporter.kube.tls_in_tls`). An ``http://`` server behind a proxy gets requests
in absolute form instead, as a forward proxy expects.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from typing import cast
from urllib.parse import urlsplit

import attrs

from transporter.kube.proxy import Proxy
from transporter.kube.tls_in_tls import TlsInTls

DEFAULT_PORTS = {"http": 80, "https": 443}


@attrs.frozen
class Route:
    """Where the connections of one API server go, and how requests name what they ask for."""

    tls: bool
    host: str
    port: int
    prefix: str
    """The server URL's path (a proxy in front of the API server), without a trailing ``/``."""
    proxy: Proxy | None = None

    @classmethod
    def to(cls, server: str, proxy: Proxy | None) -> Route:
        """Raises :class:`ValueError` if ``server``'s port is not a number."""
        parts = urlsplit(server)
        try:
            port = parts.port or DEFAULT_PORTS[parts.scheme]
        except ValueError:
            raise ValueError("its port is not a number") from None
        tls = parts.scheme == "https"
        return cls(tls, parts.hostname or "", port, parts.path.rstrip("/"), proxy)

    @property
    def tunnel(self) -> bool:
        return self.proxy is not None and self.tls

    def target(self, path: str) -> str:
        """The request target of ``path`` (and query): absolute for a forward proxy."""
        if self.proxy is None or self.tls:
            return self.prefix + path
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self.prefix}{path}"

    def proxy_headers(self) -> dict[str, str]:
        """Headers a forward proxy reads from every request (a tunnel reads them once)."""
        if self.proxy is None or self.tls or self.proxy.authorization is None:
            return {}
        return {"Proxy-Authorization": self.proxy.authorization}


class Connection(http.client.HTTPConnection):
    """Not connected until :meth:`connect` (http.client would connect at the first request,
    where its errors could not be told from the request's)."""

    def __init__(
        self,
        route: Route,
        *,
        server_tls: ssl.SSLContext | None,
        server_name: str | None,
        proxy_tls: ssl.SSLContext | None,
    ) -> None:
        first = route.proxy or route
        super().__init__(first.host, first.port)
        # http.client's hook for the socket it connects (and sends CONNECT on, if tunnelling).
        self._create_connection = self._dial
        self.route = route
        self._server_tls = server_tls
        self._server_name = server_name or route.host
        self._proxy_tls = proxy_tls
        self.past_proxy = route.proxy is None
        """Whether the proxy, if any, has been reached (and the tunnel made): for messages."""
        if route.tunnel and route.proxy is not None:
            authorization = route.proxy.authorization
            headers = {} if authorization is None else {"Proxy-Authorization": authorization}
            self.set_tunnel(route.host, route.port, headers=headers)

    def _dial(
        self, address: tuple[str, int], timeout: float, source: object = None
    ) -> socket.socket:
        raw = socket.create_connection(address, timeout)
        if self._proxy_tls is None:
            return raw
        try:
            return self._proxy_tls.wrap_socket(raw, server_hostname=address[0])
        except BaseException:
            raw.close()
            raise

    def connect(self) -> None:
        """Every layer, each step within ``self.timeout``."""
        try:
            super().connect()  # TCP (and TLS to the proxy), TCP_NODELAY, CONNECT
            self.past_proxy = True
            if self._server_tls is None:
                return
            if isinstance(self.sock, ssl.SSLSocket):
                inner = TlsInTls(self.sock, self._server_tls, self._server_name)
                self.sock = cast(socket.socket, inner)  # http.client uses only what it offers
            else:
                self.sock = self._server_tls.wrap_socket(
                    self.sock, server_hostname=self._server_name
                )
        except BaseException:
            self.close()
            raise
