"""The agent's own WebSocket client (agent/upgrade.py, agent/websocket.py) against small
servers written here, on real sockets: what it sends, what it puts together, and a clear
error for each way a server can get it wrong. Against the real control plane:
tests/e2e/test_agent_websocket.py."""

from __future__ import annotations

import base64
import contextlib
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import cast

import pytest
import trio

from transporter.agent.dial import CLOSE_WAIT, ChannelClosed, DialError, connect
from transporter.agent.upgrade import HEAD_BYTES
from transporter.protocol import frames

LIMIT = 1024
"""The largest message the agent takes in these tests."""


def accept(key: str) -> str:
    digest = hashlib.sha1(  # noqa: S324 - RFC 6455 says SHA-1
        (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()
    ).digest()
    return base64.b64encode(digest).decode()


def switching(key: str, *, accept_key: str | None = None, extra: str = "") -> bytes:
    return (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\n"
        "Connection: keep-alive, Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_key or accept(key)}\r\n{extra}\r\n"
    ).encode()


class Peer:
    """The server's end of one connection: the agent's request, then frames."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.reader = frames.Reader(1 << 20)  # the agent's frames must be masked
        self.headers: dict[str, str] = {}
        self.request_line = ""

    async def request(self) -> str:
        """Read the upgrade request; its key."""
        data = b""
        while b"\r\n\r\n" not in data:
            more = await self.stream.receive_some(65536)
            assert more, "the agent closed before its request"
            data += more
        self.request_line, *lines = data.split(b"\r\n\r\n")[0].decode().split("\r\n")
        for line in lines:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        return self.headers["sec-websocket-key"]

    async def upgraded(self) -> None:
        await self.stream.send_all(switching(await self.request()))

    async def next(self) -> frames.Received:
        while (found := self.reader.next()) is None:
            data = await self.stream.receive_some(65536)
            assert data, "the agent closed the stream"
            self.reader.feed(bytes(data))
        return found


Handler = Callable[[Peer], Awaitable[None]]


@asynccontextmanager
async def server(handle: Handler) -> AsyncIterator[str]:
    """A server on a free port that runs ``handle`` for each connection; its URL."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]

    async def serve(stream: trio.SocketStream) -> None:
        with contextlib.suppress(trio.BrokenResourceError):  # the agent hung up on it
            await handle(Peer(stream))
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, serve, listeners)
        yield f"ws://127.0.0.1:{port}/ws?x=1"
        nursery.cancel_scope.cancel()


async def refused(handle: Handler) -> str:
    """What dialling a server that runs ``handle`` raises."""
    async with server(handle) as url:
        with pytest.raises(DialError) as raised:
            async with connect(url, ssl_context=None, max_message_size=LIMIT, connect_timeout=5):
                raise AssertionError("connected")  # pragma: no cover
    return str(raised.value)


async def test_the_request_is_a_websocket_upgrade_with_a_new_key_each_time() -> None:
    seen: list[Peer] = []

    async def handle(peer: Peer) -> None:
        await peer.upgraded()
        seen.append(peer)

    async with server(handle) as url:
        for _ in range(2):
            async with connect(url, ssl_context=None, max_message_size=LIMIT, connect_timeout=5):
                pass
    first, second = seen
    assert first.request_line == "GET /ws?x=1 HTTP/1.1"
    port = url.split(":")[2].split("/")[0]
    assert first.headers["host"] == f"127.0.0.1:{port}"
    assert first.headers["upgrade"] == "websocket"
    assert first.headers["connection"] == "Upgrade"
    assert first.headers["sec-websocket-version"] == "13"
    assert len(base64.b64decode(first.headers["sec-websocket-key"])) == 16
    assert first.headers["sec-websocket-key"] != second.headers["sec-websocket-key"]


async def test_a_wrong_accept_key_is_refused() -> None:
    async def handle(peer: Peer) -> None:
        key = await peer.request()
        await peer.stream.send_all(switching(key, accept_key=accept(key + "x")))

    said = await refused(handle)
    assert "Sec-WebSocket-Accept does not match the key sent" in said
    assert said.startswith("the WebSocket upgrade with 127.0.0.1:")


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        (b"HTTP/1.1 101 OK\r\nConnection: upgrade\r\n", "no 'Upgrade: websocket'"),
        (b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\n", "no 'Connection: upgrade'"),
        (b"HTTP/1.0 101 OK\r\n", "not an HTTP/1.1 answer: 'HTTP/1.0 101 OK'"),
        (b"SSH-2.0-OpenSSH_9.6\r\n", "not an HTTP/1.1 answer"),
    ],
)
async def test_an_answer_that_is_no_websocket_upgrade_is_refused(answer: bytes, said: str) -> None:
    async def handle(peer: Peer) -> None:
        await peer.request()
        await peer.stream.send_all(answer + b"\r\n")

    assert said in await refused(handle)


async def test_an_answer_naming_an_extension_never_offered_is_refused() -> None:
    async def handle(peer: Peer) -> None:
        key = await peer.request()
        await peer.stream.send_all(switching(key, extra="Sec-WebSocket-Extensions: x\r\n"))

    assert "names sec-websocket-extensions when none was offered" in await refused(handle)


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 403 Forbidden\r\nContent-Length: 8\r\n\r\ngo away\nand more",
        b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\ngo \r\n5\r\naway\n\r\n0\r\n\r\n",
    ],
)
async def test_a_status_other_than_101_is_a_refusal_with_its_body(answer: bytes) -> None:
    async def handle(peer: Peer) -> None:  # the body held open: it is not waited for
        await peer.request()
        await peer.stream.send_all(answer)

    assert await refused(handle) == "refused with HTTP 403: go away"


async def test_a_refusal_without_a_body_says_the_status() -> None:
    async def handle(peer: Peer) -> None:
        await peer.request()
        await peer.stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")

    assert await refused(handle) == "refused with HTTP 200"


async def test_an_answer_head_over_the_bound_is_refused_without_reading_on() -> None:
    async def handle(peer: Peer) -> None:
        await peer.request()
        await peer.stream.send_all(b"HTTP/1.1 101 OK\r\n")
        filler = b"X-Filler: " + b"x" * 1000 + b"\r\n"
        with trio.move_on_after(5):  # more than the agent reads: it stops, and closes
            while True:
                await peer.stream.send_all(filler)

    said = await refused(handle)
    assert said.endswith(f"failed: the answer's head is over {HEAD_BYTES} bytes")


async def test_a_server_that_closes_before_answering_is_said_so() -> None:
    async def handle(peer: Peer) -> None:
        await peer.request()
        await peer.stream.aclose()

    assert "closed the connection before the WebSocket upgrade" in await refused(handle)


async def test_messages_both_ways_fragments_put_together_and_pings_answered() -> None:
    got: list[frames.Received] = []

    async def handle(peer: Peer) -> None:
        await peer.upgraded()
        text = "é" * 100
        encoded = text.encode()
        await peer.stream.send_all(
            frames.frame(frames.TEXT, encoded[:3], fin=False)  # cut inside a character
            + frames.frame(frames.PING, b"in-between")
            + frames.frame(frames.CONTINUATION, encoded[3:150], fin=False)
            + frames.frame(frames.CONTINUATION, encoded[150:])
            + frames.frame(frames.BINARY, b"\x00\x01")
        )
        got.append(await peer.next())  # the pong
        got.append(await peer.next())  # the agent's message
        ping = await peer.next()
        got.append(ping)
        await peer.stream.send_all(frames.frame(frames.PONG, cast(bytes, ping[1])))
        got.append(await peer.next())  # the unsolicited pong (a heartbeat)
        got.append(await peer.next())  # the close
        await peer.stream.send_all(frames.close_frame(frames.NORMAL, ""))

    async with (
        server(handle) as url,
        connect(url, ssl_context=None, max_message_size=LIMIT, connect_timeout=5) as c,
    ):
        assert await c.receive() == "é" * 100
        assert await c.receive() == b"\x00\x01"
        await c.send("hello")
        with trio.fail_after(5):
            await c.ping()
        await c.beat()
    pong, message, ping, beat, close = got
    assert pong == (frames.PONG, b"in-between")
    assert message == (frames.TEXT, "hello")
    assert ping[0] == frames.PING and len(cast(bytes, ping[1])) == 4
    assert beat == (frames.PONG, b"")
    assert close == (frames.CLOSE, (frames.NORMAL, ""))


async def test_the_servers_close_is_answered_and_said() -> None:
    answered: list[frames.Received] = []

    async def handle(peer: Peer) -> None:
        await peer.upgraded()
        await peer.stream.send_all(frames.close_frame(1001, "going away"))
        answered.append(await peer.next())

    async with (
        server(handle) as url,
        connect(url, ssl_context=None, max_message_size=LIMIT, connect_timeout=5) as c,
    ):
        with pytest.raises(ChannelClosed, match=r"^the control plane closed the connection "):
            await c.receive()
        with pytest.raises(ChannelClosed, match=r"\(1001: going away\)$"):
            await c.send("too late")
        with pytest.raises(ChannelClosed, match=r"\(1001: going away\)$"):
            await c.ping()
    assert answered == [(frames.CLOSE, (1001, ""))]


async def test_messages_nobody_read_do_not_hold_up_the_close() -> None:
    """The reader, blocked on messages the session never took, still reads the close answer:
    the agent's close ends when the control plane answers, not at the close wait's bound."""
    sent = trio.Event()

    async def handle(peer: Peer) -> None:
        await peer.upgraded()
        for n in range(3):
            await peer.stream.send_all(frames.frame(frames.TEXT, f"unread {n}".encode()))
        sent.set()
        assert (await peer.next())[0] == frames.CLOSE
        await peer.stream.send_all(frames.close_frame(1000, ""))

    async with server(handle) as url:
        async with connect(url, ssl_context=None, max_message_size=LIMIT, connect_timeout=5):
            await sent.wait()  # nothing read
            closing = trio.current_time()
        assert trio.current_time() - closing < CLOSE_WAIT  # ended by the answer, not the bound


@pytest.mark.parametrize(
    ("sent", "code", "said"),
    [
        (frames.frame(frames.TEXT, b"hi", mask=True), 1002, "a server's frame is masked"),
        (frames.frame(frames.TEXT, b"x" * (LIMIT + 1)), 1009, f"message over {LIMIT} bytes"),
        (
            frames.frame(frames.TEXT, b"x" * 1000, fin=False)
            + frames.frame(frames.CONTINUATION, b"x" * 1000),
            1009,
            f"message over {LIMIT} bytes",
        ),
        (frames.frame(frames.TEXT, b"\xff"), 1007, "a text message that is not UTF-8"),
    ],
)
async def test_a_frame_that_breaks_the_rules_closes_with_its_code(
    sent: bytes, code: int, said: str
) -> None:
    closes: list[frames.Received] = []

    async def handle(peer: Peer) -> None:
        await peer.upgraded()
        await peer.stream.send_all(sent)
        closes.append(await peer.next())

    async with (
        server(handle) as url,
        connect(url, ssl_context=None, max_message_size=LIMIT, connect_timeout=5) as c,
    ):
        with pytest.raises(ChannelClosed, match=rf"^the connection was closed \({code}\)"):
            await c.receive()
    assert closes == [(frames.CLOSE, (code, said))]


async def test_a_stream_that_ends_without_a_close_frame_is_a_broken_connection() -> None:
    async def handle(peer: Peer) -> None:
        await peer.upgraded()
        await peer.stream.aclose()

    async with (
        server(handle) as url,
        connect(url, ssl_context=None, max_message_size=LIMIT, connect_timeout=5) as c,
    ):
        with pytest.raises(ChannelClosed, match=r"^the connection broke: "):
            await c.receive()
        with pytest.raises(ChannelClosed, match=r"^the connection broke: "):
            await c.ping()


async def test_frames_that_came_with_the_upgrades_answer_are_read() -> None:
    async def handle(peer: Peer) -> None:
        key = await peer.request()
        await peer.stream.send_all(switching(key) + frames.frame(frames.TEXT, b"welcome"))

    async with (
        server(handle) as url,
        connect(url, ssl_context=None, max_message_size=LIMIT, connect_timeout=5) as c,
    ):
        assert await c.receive() == "welcome"
