"""What the test bed's own servers (the fault proxy, the API server's fault front, the relay)
share: a listener on a free loopback port, and closing a connection with an RST."""

from __future__ import annotations

import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Protocol

import trio


class HasPort(Protocol):
    port: int


async def serve_on_loopback(
    owner: HasPort,
    handler: Callable[[trio.SocketStream], Awaitable[object]],
    *,
    task_status: trio.TaskStatus[None],
) -> None:
    """Serve ``handler`` on a free port of 127.0.0.1 until cancelled; ``started()`` once
    ``owner.port`` is set."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    owner.port = listeners[0].socket.getsockname()[1]
    async with trio.open_nursery() as nursery:
        task_status.started()
        await trio.serve_listeners(handler, listeners, handler_nursery=nursery)


def reset_on_close(stream: trio.SocketStream) -> None:
    """SO_LINGER on, 0 s: closing ``stream`` sends an RST ("connection reset by peer"), not a
    FIN."""
    stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
