"""The API server lets a connection go as soon as its client has ended it, by a close or by a
reset, not when hypercorn's keep-alive time is up: a client that opens a connection for each
request would otherwise soon hold its address's whole allowance (here 1)."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from tests.bed.listen import reset_on_close
from transporter.config.values import Address
from transporter.cp.connections import Limits
from transporter.cp.http import ApiServer


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI app answering every request ``ok``."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await receive()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.mark.parametrize("reset", [False, True])
async def test_a_connection_ended_by_its_client_is_let_go_at_once(reset: bool) -> None:
    shutdown = trio.Event()
    server = ApiServer(
        app,
        Address("127.0.0.1", 0),
        tls=None,
        limits=Limits(total=10, per_address=1, handshake_timeout=5.0),
    )
    async with trio.open_nursery() as nursery:
        [url] = await nursery.start(server.serve, shutdown)
        port = int(url.rsplit(":", 1)[1])
        for _ in range(4):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stream.send_all(b"GET / HTTP/1.1\r\nHost: cp\r\n\r\n")
            answer = b""
            with trio.fail_after(5):
                while not answer.endswith(b"ok"):
                    answer += await stream.receive_some()
            assert answer.startswith(b"HTTP/1.1 200")
            await trio.testing.wait_all_tasks_blocked()  # the server's connection idle
            if reset:
                reset_on_close(stream)
            await stream.aclose()
            await trio.testing.wait_all_tasks_blocked()  # and told of the end
        shutdown.set()
