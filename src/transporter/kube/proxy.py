"""Which proxy, if any, carries requests to the API server.

As client-go (``golang.org/x/net/http/httpproxy``): a kubeconfig's ``proxy-url`` always; else
``HTTPS_PROXY`` (``HTTP_PROXY`` for an ``http://`` server) unless ``NO_PROXY`` names the host
(a name and its subdomains, an IP address, a CIDR range, ``host:port``, or ``*``); never for
``localhost`` or a loopback address. Upper case wins over lower case.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from urllib.parse import urlsplit

SUPPORTED = ("http", "https")
"""Proxy schemes urllib3 speaks without PySocks (which we do not ship)."""


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
