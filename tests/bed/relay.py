"""A TCP relay in front of a real API server, so a test can make the server vanish or go silent."""

from __future__ import annotations

import trio

from tests.bed.listen import reset_on_close, serve_on_loopback


class Relay:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:``upstream`` until :meth:`cut` or :meth:`refuse`."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.port = 0
        self.silent = False
        """When set, new connections are accepted and never answered."""
        self.refusing = False
        """When set, new connections are reset at once, as by a host whose server is down."""
        self.refused = 0
        """Connections reset so far."""
        self._scopes: set[trio.CancelScope] = set()
        self._refusal = trio.Event()

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await serve_on_loopback(self, self._handle, task_status=task_status)

    def cut(self, *, silent: bool) -> None:
        """Drop every open connection; from now on answer nothing (``silent``) or forward."""
        self.silent = silent
        for scope in self._scopes:
            scope.cancel()

    def refuse(self) -> None:
        """Drop every open connection and reset new ones until :meth:`restore`."""
        self.refusing = True
        self.cut(silent=False)

    def restore(self) -> None:
        """Forward new connections again."""
        self.silent = self.refusing = False

    async def wait_refused(self, count: int) -> None:
        """Until ``count`` connections have been reset."""
        while self.refused < count:
            await self._refusal.wait()

    async def _handle(self, client: trio.SocketStream) -> None:
        if self.refusing:
            # Linger 0: closing sends RST, which the client sees as "connection reset by peer".
            reset_on_close(client)
            self.refused += 1
            self._refusal.set()
            self._refusal = trio.Event()
            return  # trio.serve_listeners closes the stream
        with trio.CancelScope() as scope:
            self._scopes.add(scope)
            try:
                if self.silent:
                    await trio.sleep_forever()
                server = await trio.open_tcp_stream("127.0.0.1", self.upstream)
                async with server, trio.open_nursery() as nursery:
                    nursery.start_soon(_pump, client, server)
                    nursery.start_soon(_pump, server, client)
            finally:
                self._scopes.discard(scope)


async def _pump(source: trio.SocketStream, sink: trio.SocketStream) -> None:
    try:
        async for chunk in source:
            await sink.send_all(chunk)
        await sink.send_eof()
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
