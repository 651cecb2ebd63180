"""A plain HTTP proxy that only tunnels (``CONNECT host:port``), as corporate proxies in front
of an API server do; it notes every tunnel asked for."""

from __future__ import annotations

import trio

from tests.bed.listen import serve_on_loopback

MAX_HEAD = 8 * 1024


class ConnectProxy:
    def __init__(self) -> None:
        self.port = 0
        self.tunnels: list[str] = []
        """``host:port`` of each CONNECT, in order."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await serve_on_loopback(self, self._handle, task_status=task_status)

    async def _handle(self, client: trio.SocketStream) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = await client.receive_some(MAX_HEAD)
            if not chunk or len(head) > MAX_HEAD:
                return
            head += chunk
        request, _, rest = head.partition(b"\r\n\r\n")
        method, target, _ = request.split(b"\r\n", 1)[0].decode().split(" ", 2)
        if method != "CONNECT":
            await client.send_all(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        self.tunnels.append(target)
        host, _, port = target.rpartition(":")
        server = await trio.open_tcp_stream(host, int(port))
        async with server, trio.open_nursery() as nursery:
            await client.send_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if rest:
                await server.send_all(rest)
            nursery.start_soon(_pump, client, server)
            nursery.start_soon(_pump, server, client)


async def _pump(source: trio.SocketStream, sink: trio.SocketStream) -> None:
    try:
        async for chunk in source:
            await sink.send_all(chunk)
        await sink.send_eof()
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
