"""The API server lets a connection go as soon as its client has ended it, by a close or by a
reset, not when hypercorn's keep-alive time is up: a client that opens a connection for each
request would otherwise soon hold its address's whole allowance (here 1)."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from tests.bed.listen import reset_on_close
from transporter.config.values import Address
from transporter.cp import http
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


@attrs.define
class Slow:
    """An ASGI app: ``/slow`` answers once ``go`` is set (``started`` is set when it waits),
    or after ``seconds``; anything else at once."""

    seconds: float = 0.0
    started: trio.Event = attrs.field(factory=trio.Event)
    go: trio.Event = attrs.field(factory=trio.Event)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/slow":
            self.started.set()
            with trio.move_on_after(self.seconds or math.inf):
                await self.go.wait()
        await app(scope, receive, send)


async def ask(stream: trio.SocketStream, path: str = "/") -> None:
    await stream.send_all(f"GET {path} HTTP/1.1\r\nHost: cp\r\n\r\n".encode())
    answer = b""
    with trio.fail_after(10):
        while not answer.endswith(b"ok"):
            answer += await stream.receive_some()
    assert answer.startswith(b"HTTP/1.1 200"), answer


async def closed_by_the_server(stream: trio.SocketStream) -> float:
    """When (trio's clock) the server closed ``stream``."""
    with trio.fail_after(10):
        assert await stream.receive_some() == b""
    return trio.current_time()


@asynccontextmanager
async def serving(asgi: Any, shutdown: trio.Event) -> AsyncIterator[trio.SocketStream]:
    """A connection to an API server of ``asgi`` (plain HTTP), until ``shutdown``."""
    server = ApiServer(asgi, Address("127.0.0.1", 0), tls=None)
    async with trio.open_nursery() as nursery:
        [url] = await nursery.start(server.serve, shutdown)
        stream = await trio.open_tcp_stream("127.0.0.1", int(url.rsplit(":", 1)[1]))
        async with stream:
            yield stream
        shutdown.set()


async def test_an_idle_connection_is_closed_when_its_keep_alive_time_is_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each answer moves the keep-alive deadline; a request longer than it is never cut."""
    monkeypatch.setattr(http, "IDLE_TIMEOUT", 1.0)
    async with serving(Slow(seconds=1.5), trio.Event()) as stream:
        await ask(stream)
        await trio.sleep(0.5)  # the client idle for half the keep-alive time, then asks again
        await ask(stream, "/slow")  # 1.5 s: longer than the keep-alive time, answered
        answered = trio.current_time()
        # closed at the deadline its answer set (which came a little before the client had it)
        assert 0.9 <= await closed_by_the_server(stream) - answered < 1.9


async def test_the_server_stopping_closes_idle_connections_at_once_and_the_others_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(http, "IDLE_TIMEOUT", 60.0)
    shutdown = trio.Event()
    async with serving(app, shutdown) as stream:
        await ask(stream)
        began = trio.current_time()
        shutdown.set()
        assert await closed_by_the_server(stream) - began < http.GRACE / 2  # not at its end
    slow, shutdown = Slow(), trio.Event()
    async with serving(slow, shutdown) as stream:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask, stream, "/slow")
            with trio.fail_after(10):
                await slow.started.wait()
            shutdown.set()
            await trio.testing.wait_all_tasks_blocked()
            slow.go.set()  # the request under way when it stopped is answered,
        await closed_by_the_server(stream)  # then its connection closed
