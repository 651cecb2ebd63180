"""Which proxy, if any, carries requests to the API server.

As client-go (``golang.org/x/net/http/httpproxy``): a kubeconfig's ``proxy-url`` always; else
``HTTPS_PROXY`` (``HTTP_PROXY`` for an ``http://`` server) unless ``NO_PROXY`` names the host
(a name and its subdomains, an IP address, a CIDR range, ``host:port``, or ``*``); never for
``localhost`` or a loopback address. Upper case wins over lower case.

An ``http://`` or ``https://`` proxy tunnels (``CONNECT``) to an ``https://`` API server, and
forwards requests to an ``http://`` one; its URL's user and password, if any, are sent as
``Proxy-Authorization: Basic``, as client-go sends them. SOCKS proxies are refused.
"""

from __future__ import annotations

import base64
import ipaddress
import os
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

import attrs

SUPPORTED = ("http", "https")
"""Proxy schemes we speak (SOCKS is not one)."""
DEFAULT_PORTS = {"http": 80, "https": 443}


@attrs.frozen
class Proxy:
    """A proxy to go through, read from its URL."""

    tls: bool
    """``https://``: TLS to the proxy itself."""
    host: str
    port: int
    authorization: str | None = attrs.field(default=None, repr=False)
    """``Proxy-Authorization`` made of the URL's user and password."""

    @property
    def name(self) -> str:
        """``host:port``, for messages: never the URL, which may hold a password."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_proxy(url: str) -> Proxy:
    """Raises :class:`ValueError` (with a message that does not quote the URL's password)."""
    parts = urlsplit(url)
    if parts.scheme not in SUPPORTED:
        raise ValueError(f"{parts.scheme or 'no'} scheme: only http:// and https:// proxies work")
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError:
        raise ValueError("the proxy's port is not a number") from None
    if not parts.hostname:
        raise ValueError("the proxy URL names no host")
    authorization = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
    return Proxy(parts.scheme == "https", parts.hostname, port, authorization)


def _env(environ: Mapping[str, str], name: str) -> str:
    return environ.get(name.upper()) or environ.get(name.lower()) or ""


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _bypassed(host: str, port: int | None, no_proxy: str) -> bool:
    host = host.lower()
    ip = _ip(host)
    if host == "localhost" or (ip is not None and ip.is_loopback):
        return True
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        if ip is not None:
            try:
                if ip in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        name, _, entry_port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        if entry_port and entry_port != str(port):
            continue
        name = name.lstrip(".")
        if host == name or host.endswith("." + name):
            return True
    return False


def proxy_for(
    server: str, configured: str | None, environ: Mapping[str, str] = os.environ
) -> str | None:
    """The proxy URL for ``server``; ``configured`` is the kubeconfig's ``proxy-url``."""
    if configured:
        return configured
    parts = urlsplit(server)
    proxy = _env(environ, "https_proxy" if parts.scheme == "https" else "http_proxy")
    if not proxy or _bypassed(parts.hostname or "", parts.port, _env(environ, "no_proxy")):
        return None
    if "://" not in proxy:
        proxy = "http://" + proxy  # as client-go reads a bare host:port
    return proxy
