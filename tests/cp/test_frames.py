"""The agent channel's WebSocket frame reader (protocol/frames.py), byte by byte: what a client may
send is read whole however it is cut, and every breach of RFC 6455 is refused with its close
code, a message over the limit from its header alone."""

from __future__ import annotations

import os

import pytest
from wsproto.connection import Connection, ConnectionType
from wsproto.events import CloseConnection, Event, Message, Ping, Pong

from transporter.protocol import frames

LIMIT = 100_000


def client_bytes(*events: Event) -> bytes:
    """What a client (wsproto, masking as RFC 6455 says) sends for ``events``."""
    client = Connection(ConnectionType.CLIENT)
    return b"".join(client.send(event) for event in events)


def read_all(data: bytes, *, chunk: int) -> list[frames.Received]:
    reader = frames.Reader(LIMIT)
    found: list[frames.Received] = []
    for start in range(0, len(data), chunk):
        reader.feed(data[start : start + chunk])
        while (item := reader.next()) is not None:
            found.append(item)
    return found


@pytest.mark.parametrize("chunk", [1, 3, 7, 1 << 20])
def test_what_a_client_sends_is_read_whole_however_it_is_cut(chunk: int) -> None:
    big = os.urandom(70_000)  # a 64-bit length
    data = client_bytes(
        Message(data="hello ✓"),
        Ping(b"p"),
        Message(data="ab", message_finished=False),
        Pong(b"beat"),  # a control frame between fragments
        Message(data="c" * 300, message_finished=True),  # a 16-bit length
        Message(data=big),
        CloseConnection(code=4000, reason="bye ✓"),
    )
    assert read_all(data, chunk=chunk) == [
        (frames.TEXT, "hello ✓"),
        (frames.PING, b"p"),
        (frames.PONG, b"beat"),
        (frames.TEXT, "ab" + "c" * 300),
        (frames.BINARY, big),
        (frames.CLOSE, (4000, "bye ✓")),
    ]


def test_a_close_frame_without_a_code_reads_as_1005() -> None:
    data = bytes([0x88, 0x80, 1, 2, 3, 4])
    assert read_all(data, chunk=64) == [(frames.CLOSE, (frames.NO_STATUS, ""))]


def masked(first: int, payload: bytes, *, length: int | None = None) -> bytes:
    """A frame with the given first byte, masked with a zero key (payload unchanged)."""
    size = len(payload) if length is None else length
    if size < 126:
        head = bytes([first, 0x80 | size])
    elif size < 1 << 16:
        head = bytes([first, 0x80 | 126]) + size.to_bytes(2, "big")
    else:
        head = bytes([first, 0x80 | 127]) + size.to_bytes(8, "big")
    return head + b"\0\0\0\0" + payload


@pytest.mark.parametrize(
    ("data", "code", "words"),
    [
        (bytes([0x81, 0x02]) + b"hi", 1002, "masked"),
        (masked(0x81 | 0x40, b"hi"), 1002, "reserved bits"),
        (masked(0x83, b"hi"), 1002, "opcode 0x3"),
        (masked(0x8B, b""), 1002, "opcode 0xb"),
        (masked(0x09, b"p"), 1002, "control frame"),  # a ping not final
        (masked(0x89, b"p" * 126), 1002, "control frame"),
        (masked(0x80, b"x"), 1002, "no message begun"),
        (masked(0x01, b"a") + masked(0x81, b"b"), 1002, "before the last one ended"),
        (masked(0x81, b"\xff\xfe"), 1007, "not UTF-8"),
        (masked(0x88, b"\x03"), 1002, "one byte"),
        (masked(0x88, (1005).to_bytes(2, "big")), 1002, "close code 1005"),
        (masked(0x88, (999).to_bytes(2, "big")), 1002, "close code 999"),
        (masked(0x88, (1000).to_bytes(2, "big") + b"\xff"), 1007, "not UTF-8"),
        (masked(0x82, b"", length=LIMIT + 1), 1009, f"over {LIMIT} bytes"),
        (masked(0x82, b"", length=1 << 62), 1009, f"over {LIMIT} bytes"),
        (
            masked(0x02, b"x" * (LIMIT // 2))
            + masked(0x00, b"x" * (LIMIT // 2))
            + masked(0x80, b"", length=2),
            1009,
            "over",
        ),
    ],
    ids=[
        "unmasked",
        "reserved-bits",
        "reserved-data-opcode",
        "reserved-control-opcode",
        "fragmented-ping",
        "ping-over-125",
        "continuation-alone",
        "new-message-mid-message",
        "text-not-utf8",
        "close-one-byte",
        "close-code-reserved",
        "close-code-too-low",
        "close-reason-not-utf8",
        "over-the-limit",
        "huge-length",
        "over-the-limit-across-fragments",
    ],
)
def test_a_breach_is_refused_with_its_close_code(data: bytes, code: int, words: str) -> None:
    """The message over the limit is refused from its header: no payload was sent for it."""
    with pytest.raises(frames.FrameError) as refused:
        read_all(data, chunk=len(data))
    assert refused.value.code == code
    assert words in refused.value.reason


def test_a_message_at_the_limit_is_read() -> None:
    data = client_bytes(Message(data=b"x" * LIMIT))
    assert read_all(data, chunk=4096) == [(frames.BINARY, b"x" * LIMIT)]


def test_frames_written_read_back_through_a_client() -> None:
    client = Connection(ConnectionType.CLIENT)
    client.receive_data(
        frames.frame(frames.TEXT, "é".encode() * 40_000)
        + frames.frame(frames.PONG, b"x")
        + frames.close_frame(1009, "é" * 200)  # cut to fit, not mid-character
    )
    events = list(client.events())
    assert isinstance(events[0], Message) and events[0].data == "é" * 40_000
    assert isinstance(events[1], Pong) and events[1].payload == b"x"
    assert isinstance(events[2], CloseConnection) and events[2].code == 1009
    assert events[2].reason == "é" * 61


def server_read(data: bytes) -> list[frames.Received]:
    """What wsproto's server side reads of ``data`` (a client's frames)."""
    server = Connection(ConnectionType.SERVER)
    server.receive_data(data)
    found: list[frames.Received] = []
    for event in server.events():
        if isinstance(event, Message):
            found.append((frames.TEXT, event.data))
        elif isinstance(event, Ping | Pong):
            found.append((frames.PING if isinstance(event, Ping) else frames.PONG, event.payload))
        elif isinstance(event, CloseConnection):
            found.append((frames.CLOSE, (event.code, event.reason or "")))
    return found


@pytest.mark.parametrize("size", [0, 5, 125, 126, 70_000])
def test_a_clients_frames_are_masked_with_a_new_key_each_and_read_back(size: int) -> None:
    text = "x" * size
    first = frames.frame(frames.TEXT, text.encode(), mask=True)
    second = frames.frame(frames.TEXT, text.encode(), mask=True)
    assert first[1] & 0x80 and second[1] & 0x80
    assert size == 0 or first != second  # the keys differ (2**-32 that they do not)
    data = (
        first
        + frames.frame(frames.PING, b"p", mask=True)
        + frames.close_frame(1001, "b", mask=True)
    )
    assert read_all(data, chunk=3) == [
        (frames.TEXT, text),
        (frames.PING, b"p"),
        (frames.CLOSE, (1001, "b")),
    ]
    assert server_read(data) == read_all(data, chunk=1 << 20)


@pytest.mark.parametrize("chunk", [1, 2, 1 << 20])
def test_the_clients_reader_takes_a_servers_frames_fragments_put_together(chunk: int) -> None:
    data = (
        frames.frame(frames.TEXT, "ab✓".encode()[:3], fin=False)
        + frames.frame(frames.PONG, b"")
        + frames.frame(frames.CONTINUATION, "ab✓".encode()[3:])
        + frames.frame(frames.BINARY, bytes(300))
    )
    reader = frames.Reader(LIMIT, masked=False)
    found: list[frames.Received] = []
    for start in range(0, len(data), chunk):
        reader.feed(data[start : start + chunk])
        while (item := reader.next()) is not None:
            found.append(item)
    assert found == [(frames.PONG, b""), (frames.TEXT, "ab✓"), (frames.BINARY, bytes(300))]


def test_the_clients_reader_refuses_a_masked_frame_and_one_over_the_limit() -> None:
    reader = frames.Reader(10, masked=False)
    reader.feed(frames.frame(frames.TEXT, b"hi", mask=True))
    with pytest.raises(frames.FrameError, match="a server's frame is masked") as refused:
        reader.next()
    assert refused.value.code == frames.PROTOCOL_ERROR
    reader = frames.Reader(10, masked=False)
    reader.feed(frames.frame(frames.TEXT, b"x" * 11)[:4])  # the header says it
    with pytest.raises(frames.FrameError, match="over 10 bytes") as refused:
        reader.next()
    assert refused.value.code == frames.TOO_BIG


@pytest.mark.parametrize("masked", [True, False], ids=["client's", "server's"])
def test_endless_empty_fragments_end_at_the_limit(masked: bool) -> None:
    reader = frames.Reader(10, masked=masked)
    data = frames.frame(frames.TEXT, b"", mask=masked, fin=False)
    data += frames.frame(0x0, b"", mask=masked, fin=False) * 10
    reader.feed(data)
    with pytest.raises(frames.FrameError) as refused:
        drain(reader)
    assert refused.value.code == 1009


def drain(reader: frames.Reader) -> None:
    while reader.next() is not None:
        pass
