"""The API connection's writes (cp/http.py ``Http1Only``): an answer's head goes out with what
follows it, in one write; every byte goes, in order; an informational answer is never held; a
switch to another protocol closes the connection. On trio's memory streams, writes counted."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from transporter.cp.http import Http1Only

HEAD = b"HTTP/1.1 202 \r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n"


async def written(writes: list[bytes]) -> list[bytes]:
    """What the peer receives, write by write, when hypercorn writes ``writes``."""
    ours = trio.testing.MemorySendStream()
    seen: list[bytes] = []

    async def hook() -> None:
        seen.append(bytes(ours.get_data_nowait()))

    ours.send_all_hook = hook
    stream = Http1Only(trio.StapledStream(ours, trio.testing.MemoryReceiveStream()))
    for data in writes:
        await stream.send_all(data)
    return seen


async def test_a_head_goes_out_with_its_body_and_an_empty_end_is_no_write() -> None:
    assert await written([HEAD, b"{}", b""]) == [HEAD + b"{}"]


async def test_a_head_with_no_body_goes_out_with_its_end() -> None:
    head = b"HTTP/1.1 204 \r\n\r\n"
    assert await written([head, b""]) == [head]
    chunked = b"HTTP/1.1 200 \r\ntransfer-encoding: chunked\r\n\r\n"
    assert await written([chunked, b"2\r\n{}\r\n", b"0\r\n\r\n"]) == [
        chunked + b"2\r\n{}\r\n",
        b"0\r\n\r\n",
    ]


@pytest.mark.parametrize("status", [b"100 Continue", b"103 Early Hints"])
async def test_an_informational_answer_is_never_held(status: bytes) -> None:
    interim = b"HTTP/1.1 " + status + b"\r\n\r\n"
    assert await written([interim, HEAD, b"{}", b""]) == [interim, HEAD + b"{}"]


async def test_answers_one_after_another_keep_their_order() -> None:
    second = HEAD.replace(b"202", b"409")
    assert await written([HEAD, b"{}", b"", second, b"{}", b""]) == [
        HEAD + b"{}",
        second + b"{}",
    ]


async def test_a_switch_of_protocol_closes_the_connection() -> None:
    with pytest.raises(trio.BrokenResourceError, match="HTTP/2 is not served here"):
        await written([b"HTTP/1.1 101 Switching Protocols\r\n\r\n"])
