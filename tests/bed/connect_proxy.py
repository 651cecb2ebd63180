"""An HTTP proxy as corporate proxies in front of an API server are: it tunnels (``CONNECT
host:port``) and forwards requests in absolute form (``GET http://host:port/path``). It may be
an ``https://`` proxy (TLS to the proxy itself), may ask for a user and password (``407``
without the right ``Proxy-Authorization: Basic``), and may resolve names its clients cannot. It
notes every tunnel and forwarded request.
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import Mapping
from urllib.parse import urlsplit

import trio

from tests.bed.listen import serve_on_loopback

MAX_HEAD = 8 * 1024


class ConnectProxy:
    def __init__(
        self,
        *,
        tls: ssl.SSLContext | None = None,
        user: str | None = None,
        names: Mapping[str, str] | None = None,
    ) -> None:
        self.port = 0
        self.tls = tls
        self.user = user
        """``name:password`` asked for; ``None``: anyone may use the proxy."""
        self.names = dict(names or {})
        """Host names the proxy resolves itself, to addresses (its own DNS)."""
        self.tunnels: list[str] = []
        """``host:port`` of each CONNECT let through, in order."""
        self.forwarded: list[str] = []
        """The target of each connection's first forwarded request (absolute form), in order."""
        self.refused = 0
        """Requests answered 407: no or wrong credentials."""

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await serve_on_loopback(self, self._handle, task_status=task_status)

    async def _handle(self, tcp: trio.SocketStream) -> None:
        client: trio.abc.Stream = tcp
        if self.tls is not None:
            client = trio.SSLStream(tcp, self.tls, server_side=True, https_compatible=True)
        try:
            await self._serve_one(client)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await trio.aclose_forcefully(client)

    async def _serve_one(self, client: trio.abc.Stream) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = await client.receive_some(MAX_HEAD)
            if not chunk or len(head) > MAX_HEAD:
                return
            head += chunk
        request, _, rest = head.partition(b"\r\n\r\n")
        lines = request.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines[1:])
        }
        if not self._allowed(headers.get("proxy-authorization")):
            self.refused += 1
            await client.send_all(
                b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                b'Proxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n\r\n'
            )
            return
        if method == "CONNECT":
            self.tunnels.append(target)
            host, _, port = target.rpartition(":")
            async with await trio.open_tcp_stream(self.names.get(host, host), int(port)) as server:
                await client.send_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await _join(client, server, rest)
            return
        parts = urlsplit(target)
        if not parts.hostname or not parts.port:
            await client.send_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            return
        self.forwarded.append(target)
        address = self.names.get(parts.hostname, parts.hostname)
        async with await trio.open_tcp_stream(address, parts.port) as server:
            await _join(client, server, head)  # as it came: servers take the absolute form too

    def _allowed(self, authorization: str | None) -> bool:
        if self.user is None:
            return True
        expected = "Basic " + base64.b64encode(self.user.encode()).decode()
        return authorization == expected


async def _join(client: trio.abc.Stream, server: trio.SocketStream, first: bytes) -> None:
    """Relay both ways until both have ended, ``first`` sent to the server first."""
    if first:
        await server.send_all(first)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_pump, client, server)
        nursery.start_soon(_pump, server, client)


async def _pump(source: trio.abc.Stream, sink: trio.abc.Stream) -> None:
    try:
        async for chunk in source:
            await sink.send_all(chunk)
        if isinstance(sink, trio.SocketStream):
            await sink.send_eof()
        else:
            await sink.aclose()  # TLS has no half-close
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
