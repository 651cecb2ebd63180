"""Dialling the control plane fails with the channel's own error, saying at which step and why
(:mod:`transporter.agent.dial`): real sockets, nothing listening or nothing answering."""

from __future__ import annotations

import pytest
import trio

from tests.bed.process import free_port
from transporter.agent.dial import DialError, connect


async def dial(url: str, seconds: float = 5.0) -> None:
    async with connect(url, ssl_context=None, max_message_size=1024, connect_timeout=seconds):
        raise AssertionError("connected")  # pragma: no cover


async def test_nothing_listening_is_said_as_the_system_says_it() -> None:
    port = free_port()
    with pytest.raises(DialError, match=f"cannot connect to 127.0.0.1:{port}: Connection refused"):
        await dial(f"ws://127.0.0.1:{port}/ws")


async def test_a_listener_that_never_answers_the_upgrade_is_a_timeout_that_says_where() -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    async with trio.open_nursery() as nursery:

        async def hold(stream: trio.SocketStream) -> None:
            await trio.sleep_forever()

        nursery.start_soon(trio.serve_listeners, hold, listeners)
        said = (
            f"127.0.0.1:{port} took the connection but did not finish the TLS handshake and"
            " the WebSocket upgrade within 0.5 s"
        )
        with pytest.raises(DialError, match=said):
            await dial(f"ws://127.0.0.1:{port}/ws", seconds=0.5)
        nursery.cancel_scope.cancel()


async def test_an_http_refusal_carries_the_status_and_what_the_server_said() -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    async with trio.open_nursery() as nursery:

        async def refuse(stream: trio.SocketStream) -> None:
            await stream.receive_some(65536)
            body = b"go away\n"
            head = f"HTTP/1.1 403 Forbidden\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            await stream.send_all(head + body)
            await trio.sleep_forever()

        nursery.start_soon(trio.serve_listeners, refuse, listeners)
        with pytest.raises(DialError, match="refused with HTTP 403: go away"):
            await dial(f"ws://127.0.0.1:{port}/ws")
        nursery.cancel_scope.cancel()
