"""The fault proxy itself, in front of a plain echo server: each mode does what it says."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import trio

from tests.bed.faultproxy import FaultProxy

QUIET = 0.3
"""Seconds of silence that show nothing comes through (an absence cannot be waited for)."""


class Echo:
    """A TCP echo server that says how each of its connections ended: ``eof`` or ``reset``."""

    def __init__(self) -> None:
        self.port = 0
        self.accepted = 0
        self.streams: list[trio.SocketStream] = []
        self._ends_in, self.ends = trio.open_memory_channel[str](16)

    async def handle(self, stream: trio.SocketStream) -> None:
        self.accepted += 1
        self.streams.append(stream)
        end = "eof"
        try:
            async for chunk in stream:
                await stream.send_all(chunk)
        except trio.BrokenResourceError:
            end = "reset"
        await self._ends_in.send(end)


@pytest.fixture
async def echo(nursery: trio.Nursery) -> Echo:
    server = Echo()
    serve = functools.partial(trio.serve_tcp, server.handle, 0, host="127.0.0.1")
    listeners: list[trio.SocketListener] = await nursery.start(serve)
    server.port = listeners[0].socket.getsockname()[1]
    return server


@pytest.fixture
async def proxy(nursery: trio.Nursery, echo: Echo) -> FaultProxy:
    faulty = FaultProxy("127.0.0.1", echo.port)
    await nursery.start(faulty.serve)
    return faulty


Dial = Callable[[], Awaitable[trio.SocketStream]]


@pytest.fixture
async def dial(proxy: FaultProxy) -> AsyncIterator[Dial]:
    """Connects a client to the proxy; every client is closed at the end of the test."""
    streams: list[trio.SocketStream] = []

    async def connect() -> trio.SocketStream:
        stream = await trio.open_tcp_stream("127.0.0.1", proxy.port)
        streams.append(stream)
        return stream

    yield connect
    for stream in streams:
        await trio.aclose_forcefully(stream)


async def receive_exactly(stream: trio.SocketStream, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = await stream.receive_some(size - len(data))
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    return data


async def roundtrip(stream: trio.SocketStream, data: bytes) -> float:
    """Seconds for ``data`` to come back from the echo server."""
    start = trio.current_time()
    await stream.send_all(data)
    assert await receive_exactly(stream, len(data)) == data
    return trio.current_time() - start


async def assert_silent(stream: trio.SocketStream) -> None:
    """Nothing arrives on ``stream``: no bytes, no FIN, no RST."""
    with trio.move_on_after(QUIET):
        got = await stream.receive_some()
        pytest.fail(f"expected silence, got {got!r}")


async def assert_no_end(echo: Echo) -> None:
    with trio.move_on_after(QUIET):
        end = await echo.ends.receive()
        pytest.fail(f"the server saw its connection end ({end}) through a silent link")


async def test_pass_through_forwards_both_ways_and_counts(
    proxy: FaultProxy, dial: Dial, echo: Echo
) -> None:
    with trio.fail_after(10):
        stream = await dial()
        await roundtrip(stream, b"hello")
        await proxy.wait_until(lambda c: c.bytes_down == 5)
        assert (proxy.counts.accepted, proxy.counts.bytes_up, echo.accepted) == (1, 5, 1)
        assert proxy.open_connections == 1
        await stream.send_eof()  # a half-close goes through, and the server's close comes back
        assert await echo.ends.receive() == "eof"
        assert await stream.receive_some() == b""
        await stream.aclose()
        await proxy.wait_until(lambda _: proxy.open_connections == 0)
        assert (proxy.counts.client_ends, proxy.counts.upstream_ends) == (1, 1)


async def test_delay_adds_latency_in_each_direction(proxy: FaultProxy, dial: Dial) -> None:
    with trio.fail_after(10):
        stream = await dial()
        assert await roundtrip(stream, b"warm") < 0.2
        proxy.delay(0.25)
        slow = await roundtrip(stream, b"slow")
        assert 0.5 <= slow < 2.0  # 0.25 s up and 0.25 s down
        # Latency, not a narrower pipe: chunks sent 0.1 s apart come back 0.1 s apart.
        start = trio.current_time()
        await stream.send_all(b"one")
        await trio.sleep(0.1)
        await stream.send_all(b"two")
        assert await receive_exactly(stream, 3) == b"one"
        first = trio.current_time() - start
        assert await receive_exactly(stream, 3) == b"two"
        second = trio.current_time() - start
        assert first >= 0.5 and second - first < 0.4
        proxy.pass_through()
        assert await roundtrip(stream, b"fast") < 0.2


async def test_drop_leaves_open_connections_half_open_for_good(
    proxy: FaultProxy, dial: Dial, echo: Echo
) -> None:
    with trio.fail_after(10):
        stream = await dial()
        await roundtrip(stream, b"live")
        proxy.drop()
        await stream.send_all(b"up!")  # thrown away, quietly
        await proxy.wait_until(lambda c: c.discarded == 3)
        await assert_silent(stream)
        await echo.streams[0].send_all(b"down")  # the other way too
        await proxy.wait_until(lambda c: c.discarded == 7)
        await assert_silent(stream)
        assert (proxy.counts.bytes_up, proxy.counts.bytes_down) == (4, 4)
        # The client leaves: its FIN reaches the proxy, not the server (half-open).
        await stream.aclose()
        await proxy.wait_until(lambda c: c.client_ends == 1)
        await assert_no_end(echo)
        # Lifting the drop does not heal a connection that lost bytes.
        proxy.pass_through()
        await assert_no_end(echo)
        assert proxy.open_connections == 1
        await proxy.cut()
        assert await echo.ends.receive() == "eof"
        assert proxy.open_connections == 0


async def test_drop_holds_new_connections_until_lifted(
    proxy: FaultProxy, dial: Dial, echo: Echo
) -> None:
    with trio.fail_after(10):
        proxy.drop()
        stream = await dial()  # accepted, and then nothing
        await stream.send_all(b"early")
        await proxy.wait_until(lambda c: c.accepted == 1)
        await assert_silent(stream)
        assert echo.accepted == 0
        assert proxy.counts.discarded == 0
        proxy.pass_through()  # the link heals: the connection goes on, nothing lost
        assert await receive_exactly(stream, 5) == b"early"
        assert echo.accepted == 1


@pytest.mark.parametrize(("rst", "end"), [(False, "eof"), (True, "reset")], ids=["fin", "rst"])
async def test_cut_closes_both_sides_of_every_connection(
    proxy: FaultProxy, dial: Dial, echo: Echo, rst: bool, end: str
) -> None:
    with trio.fail_after(10):
        streams = [await dial() for _ in range(2)]
        for stream in streams:
            await roundtrip(stream, b"ping")
        await proxy.cut(rst=rst)
        assert proxy.open_connections == 0
        for stream in streams:
            if rst:
                with pytest.raises(trio.BrokenResourceError):
                    await stream.receive_some()
            else:
                assert await stream.receive_some() == b""
            assert await echo.ends.receive() == end
        # The mode is unchanged: a new connection goes through.
        await roundtrip(await dial(), b"again")
        assert proxy.counts.accepted == 3


async def test_refuse_resets_new_connections_and_keeps_open_ones(
    proxy: FaultProxy, dial: Dial, echo: Echo
) -> None:
    with trio.fail_after(10):
        kept = await dial()
        await roundtrip(kept, b"kept")
        proxy.refuse()
        refused = await dial()
        with pytest.raises(trio.BrokenResourceError):
            await refused.receive_some()
        assert (proxy.counts.accepted, proxy.counts.refused, echo.accepted) == (2, 1, 1)
        await roundtrip(kept, b"still")
        proxy.pass_through()
        await roundtrip(await dial(), b"open again")
        assert echo.accepted == 2
