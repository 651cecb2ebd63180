"""The agent channel's own WebSocket framing (cp/framing.py), over real TCP on loopback, with
the clients agents use (trio-websocket) or raw wsproto where a client must misbehave: pings
answered in the serving task and returned as heartbeats, fragmented messages read whole and
bounded across fragments, close frames both ways, and requests that are not upgrades."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial

import pytest
import trio
from trio_websocket import connect_websocket
from wsproto.connection import Connection, ConnectionType
from wsproto.events import CloseConnection, Message, Ping, Pong, Request
from wsproto.handshake import H11Handshake

from transporter.cp.framing import MESSAGE_TOO_BIG, Closed, Socket, Upgrade

LIMIT = 1000

Serve = Callable[[Socket], Awaitable[None]]


class Ended(list[Closed]):
    """How the server's connections ended; ``one`` is set at the first."""

    def __init__(self) -> None:
        super().__init__()
        self.one = trio.Event()


@asynccontextmanager
async def server(serve: Serve) -> AsyncIterator[tuple[int, Ended]]:
    """A listener on a free loopback port whose connections are upgraded and given to
    ``serve``; yields the port and what ended each connection's ``serve``."""
    ended = Ended()

    async def handle(stream: trio.SocketStream) -> None:
        upgrade = Upgrade(stream, max_message_bytes=LIMIT)
        try:
            if await upgrade.request():
                await serve(await upgrade.accept())
        except Closed as exc:
            ended.append(exc)
            ended.one.set()
        finally:
            await trio.aclose_forcefully(stream)

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
        yield listeners[0].socket.getsockname()[1], ended
        nursery.cancel_scope.cancel()


async def echo(ws: Socket) -> None:
    """Answer each message with its text, and each ping with ``ping``."""
    while True:
        received = await ws.receive()
        await ws.send_message("heard" if received is None else f"got {received!r}")


@asynccontextmanager
async def raw(port: int) -> AsyncIterator[tuple[trio.SocketStream, Connection]]:
    """A TCP stream upgraded by hand, and the client's wsproto connection."""
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        handshake = H11Handshake(ConnectionType.CLIENT)
        await stream.send_all(handshake.send(Request(host="localhost", target="/ws")))
        while handshake.connection is None:
            handshake.receive_data(await stream.receive_some(4096))
            list(handshake.events())
        yield stream, handshake.connection


async def test_a_ping_is_answered_and_counts_as_heard() -> None:
    async with server(echo) as (port, _), trio.open_nursery() as nursery:
        ws = await connect_websocket(nursery, "127.0.0.1", port, "/ws", use_ssl=False)
        with trio.fail_after(10):
            await ws.ping(b"x")  # returns once the pong came back
            assert await ws.get_message() == "heard"
            await ws.send_message("hello")
            assert await ws.get_message() == "got 'hello'"
        await ws.aclose()


async def test_an_unsolicited_pong_counts_as_heard_and_is_not_answered() -> None:
    async with server(echo) as (port, _), raw(port) as (stream, client):
        with trio.fail_after(10):
            await stream.send_all(client.send(Pong(b"beat")))
            await stream.send_all(client.send(Message(data="after")))
            received = b""
            while b"after" not in received:
                received += await stream.receive_some(4096)
        client.receive_data(received)
        assert [e.data for e in client.events() if isinstance(e, Message)] == [
            "heard",
            "got 'after'",
        ]


async def test_fragments_are_read_as_one_message_and_bounded_across_them() -> None:
    async with server(echo) as (port, ended), raw(port) as (stream, client):
        with trio.fail_after(10):
            for part in ("ab", "cd", "ef"):
                await stream.send_all(client.send(Message(data=part, message_finished=False)))
            await stream.send_all(client.send(Message(data="!", message_finished=True)))
            received = b""
            while b"abcdef!" not in received:
                received += await stream.receive_some(4096)
            # Each fragment under the limit, together over it: closed with 1009.
            for _ in range(3):
                piece = Message(data="x" * (LIMIT // 2), message_finished=False)
                await stream.send_all(client.send(piece))
            closes: list[CloseConnection] = []
            while not closes:
                data = await stream.receive_some(4096)
                assert data, "the server closed without a close frame"
                client.receive_data(data)
                closes = [e for e in client.events() if isinstance(e, CloseConnection)]
        assert closes[0].code == MESSAGE_TOO_BIG
        await stream.send_all(client.send(closes[0].response()))
        with trio.fail_after(10):
            await ended.one.wait()
        assert ended[0].by_us and ended[0].code == 1009


async def test_the_agents_close_frame_is_answered_and_ends_the_socket() -> None:
    async with server(echo) as (port, ended), trio.open_nursery() as nursery:
        ws = await connect_websocket(nursery, "127.0.0.1", port, "/ws", use_ssl=False)
        with trio.fail_after(10):
            await ws.aclose(code=4000, reason="bye")  # waits for the server's answer
            await ended.one.wait()

        assert (ended[0].code, ended[0].reason, ended[0].by_us) == (4000, "bye", False)


async def test_a_stream_that_breaks_ends_the_socket_with_1006() -> None:
    async with server(echo) as (port, ended), raw(port) as (stream, _):
        await stream.aclose()  # closed twice: the second does nothing
        with trio.fail_after(10):
            await ended.one.wait()
        assert ended[0].code == 1006


async def test_a_ping_crossing_our_close_frame_ends_quietly() -> None:
    closed = trio.Event()

    async def close_at_once(ws: Socket) -> None:
        with trio.fail_after(10):
            await ws.close(1000, "done")  # the ping below arrives while we wait for the answer
        closed.set()
        with pytest.raises(Closed):
            await ws.send_message("too late")

    async with server(close_at_once) as (port, ended), raw(port) as (stream, client):
        with trio.fail_after(10):
            await stream.send_all(client.send(Ping(b"late")))
            received: list[CloseConnection] = []
            while not received:
                client.receive_data(await stream.receive_some(4096))
                received = [e for e in client.events() if isinstance(e, CloseConnection)]
            await stream.send_all(client.send(received[0].response()))
            await closed.wait()
        assert ended == []


@pytest.mark.parametrize(
    ("request_text", "status"),
    [
        (b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n", b"400"),
        (
            b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            b"Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\nSec-WebSocket-Version: 8\r\n\r\n",
            b"426",
        ),
        (b"GET /ws HTTP/1.1\r\n" + b"X-Pad: " + b"x" * 20_000 + b"\r\n\r\n", b"400"),
    ],
    ids=["not-an-upgrade", "another-version", "headers-too-large"],
)
async def test_a_request_that_is_not_an_upgrade_is_refused(
    request_text: bytes, status: bytes
) -> None:
    async def never(ws: Socket) -> None:
        raise AssertionError("not upgraded")

    async with server(never) as (port, _):
        async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
            await stream.send_all(request_text)
            answer = b""
            with trio.fail_after(10):
                while chunk := await stream.receive_some(4096):
                    answer += chunk
        assert answer.startswith(b"HTTP/1.1 " + status)
