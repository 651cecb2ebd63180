"""The trio client (kube/trio_client.py, kube/http1.py) against a hostile or unusual API server:
a plain HTTP server on a free loopback port that answers each request with canned bytes. What
is not HTTP, or is past a bound (a line of 64 KiB, 100 header fields, the answer's size), fails
at once with our errors, never read forever; bodies are delimited by length, by chunks or by
the end of the connection; a connection is kept only when the answer says it may be and nothing
came past it; and what we send cannot carry a header we did not mean.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from tests.bed.accounts import connected
from tests.bed.front import pointed_at
from tests.bed.kube import Cluster
from tests.bed.listen import serve_on_loopback
from transporter.kube import KubeConfigError, KubeRejected, KubeUnavailable
from transporter.kube.client import HttpClient
from transporter.kube.retry import NO_RETRY
from transporter.kube.transport import Transport

PROMPT = 5.0
"""Seconds a call that must end at once may take: well under the transport's timeout (10 s),
so a call that ends only by timing out fails the test."""
VERSION = b'{"gitVersion":"v1"}'
JSON = b"Content-Type: application/json"
FAILED = "^connection to the API server failed: "
"""How :class:`KubeUnavailable` begins when the answer could not be read."""

Answer = bytes | Callable[[trio.SocketStream], Awaitable[None]]
"""Bytes to send (the connection then waits for the next request), or what to do instead (the
connection is closed once it returns)."""


def message(*lines: bytes, body: bytes = b"") -> bytes:
    """A head of ``lines`` (the status line first), and ``body``."""
    return b"".join(line + b"\r\n" for line in lines) + b"\r\n" + body


def ok(*lines: bytes, status: bytes = b"HTTP/1.1 200 OK", body: bytes = VERSION) -> bytes:
    """A JSON answer with its ``Content-Length`` (and ``lines`` beside)."""
    length = b"Content-Length: %d" % len(body)
    return message(status, JSON, length, *lines, body=body)


def then_close(*parts: bytes) -> Answer:
    """Send ``parts`` one after the other, then close the connection."""

    async def send(stream: trio.SocketStream) -> None:
        for part in parts:
            await stream.send_all(part)

    return send


def then_stall(data: bytes) -> Answer:
    """Send ``data``, then nothing more, never closing."""

    async def send(stream: trio.SocketStream) -> None:
        await stream.send_all(data)
        await trio.sleep_forever()

    return send


def endless(first: bytes) -> Answer:
    """``first``, then bytes without a line break for as long as the client reads them."""

    async def send(stream: trio.SocketStream) -> None:
        await stream.send_all(first)
        junk = b"a" * 65536
        while True:
            await stream.send_all(junk)

    return send


async def next_head(stream: trio.abc.ReceiveStream, buffer: bytes) -> tuple[bytes, bytes] | None:
    """The next request's head read from ``stream`` after ``buffer``, and what came past it;
    ``None`` at the connection's end."""
    while b"\r\n\r\n" not in buffer:
        data = await stream.receive_some(65536)
        if not data:
            return None
        buffer += data
    head, _, rest = buffer.partition(b"\r\n\r\n")
    return head, rest


@attrs.define
class Canned:
    """A plain HTTP server that answers each request with the next of :attr:`answers`."""

    answers: list[Answer] = attrs.Factory(list)
    requests: list[tuple[int, bytes]] = attrs.Factory(list)
    """Each request's connection (numbered from 1 as accepted) and head, as it came."""
    connections: int = 0
    port: int = 0

    def answer(self, *answers: Answer) -> None:
        self.answers.extend(answers)

    def on(self) -> list[int]:
        """The connection each request came on, in order."""
        return [connection for connection, _ in self.requests]

    async def handle(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        connection = self.connections
        buffer = b""
        async with stream:
            try:
                while read := await next_head(stream, buffer):
                    head, buffer = read
                    self.requests.append((connection, head))
                    answer = self.answers.pop(0)
                    if not isinstance(answer, bytes):
                        await answer(stream)
                        return
                    await stream.send_all(answer)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return  # the client gave up on the connection


@pytest.fixture(autouse=True)
def trio_client_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy from the environment, and the thread client never used: these tests are of the
    trio client."""
    for name in ("http_proxy", "HTTP_PROXY"):
        monkeypatch.delenv(name, raising=False)

    def refuse(self: HttpClient, *args: object, **kwargs: object) -> None:
        raise AssertionError("the thread client was used")

    monkeypatch.setattr(HttpClient, "request", refuse)


@pytest.fixture
async def server() -> AsyncIterator[Canned]:
    canned = Canned()
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_on_loopback, canned, canned.handle)
        yield canned
        nursery.cancel_scope.cancel()


@pytest.fixture
def kubeconfig(cluster: Cluster, server: Canned, tmp_path: Path) -> Path:
    return pointed_at(cluster, f"http://127.0.0.1:{server.port}", tmp_path)


async def version(transport: Transport, **kwargs: Any) -> Any:
    """GET /version, tried once."""
    return await transport.request("GET", "/version", retry=NO_RETRY, **kwargs)


async def fails_at_once(transport: Transport, match: str) -> None:
    """GET /version fails with :class:`KubeUnavailable` matching ``match``, well before the
    transport's timeout."""
    with trio.fail_after(PROMPT), pytest.raises(KubeUnavailable, match=match):
        await version(transport)


async def read_twice(server: Canned, kubeconfig: Path) -> list[int]:
    """GET /version twice, each read whole; the connection each came on."""
    async with connected(kubeconfig) as transport:
        assert await version(transport) == {"gitVersion": "v1"}
        assert await version(transport) == {"gitVersion": "v1"}
    return server.on()


async def test_an_answer_that_is_not_http_is_refused(server: Canned, kubeconfig: Path) -> None:
    server.answer(then_stall(b"SSH-2.0-OpenSSH_9.6\r\n"))
    async with connected(kubeconfig) as transport:
        await fails_at_once(
            transport,
            FAILED + r"the answer does not begin with an "
            r"HTTP/1.1 status line: b'SSH-2.0-OpenSSH_9.6'",
        )


async def test_a_status_outside_http_is_refused(server: Canned, kubeconfig: Path) -> None:
    server.answer(
        ok(status=b"HTTP/1.1 999 Nine"),
        ok(status=b"HTTP/1.1 2OO OK"),
        ok(status=b"ICY 200 OK"),  # a Shoutcast server: HTTP but for its version
        ok(status=b"HTTP/2.0 200 OK"),
    )
    async with connected(kubeconfig) as transport:
        with pytest.raises(KubeUnavailable, match=r"the answer's status 999 is not one HTTP has"):
            await version(transport)
        for line in ("HTTP/1.1 2OO OK", "ICY 200 OK", "HTTP/2.0 200 OK"):
            with pytest.raises(
                KubeUnavailable, match=re.escape(f"HTTP/1.1 status line: b'{line}'")
            ):
                await version(transport)
    assert server.on() == [1, 2, 3, 4]


async def test_a_header_line_over_64_kib_is_refused(server: Canned, kubeconfig: Path) -> None:
    server.answer(
        ok(b"X-Fits: " + b"a" * (60 * 1024)),
        then_stall(ok(b"X-Big: " + b"a" * (64 * 1024))),
    )
    async with connected(kubeconfig) as transport:
        assert await version(transport) == {"gitVersion": "v1"}
        await fails_at_once(transport, FAILED + r"a line of the answer is over 64 KiB")


@pytest.mark.parametrize("first", [b"", b"HTTP/1.1 200 OK\r\nX-Endless: "])
async def test_endless_bytes_without_a_line_break_are_cut_off(
    server: Canned, kubeconfig: Path, first: bytes
) -> None:
    """Not read forever (nor until the timeout): cut off at the line's bound."""
    server.answer(endless(first))
    async with connected(kubeconfig) as transport:
        await fails_at_once(transport, r"a line of the answer is over 64 KiB")


async def test_over_100_header_fields_are_refused(server: Canned, kubeconfig: Path) -> None:
    hundred = [b"X-Field-%d: v" % n for n in range(98)]  # and Content-Type, Content-Length
    server.answer(ok(*hundred), then_stall(ok(*hundred, b"X-One-Too-Many: v")))
    async with connected(kubeconfig) as transport:
        assert await version(transport) == {"gitVersion": "v1"}
        await fails_at_once(transport, FAILED + r"the answer has over 100 header")


async def test_over_100_header_lines_of_one_name_are_refused(
    server: Canned, kubeconfig: Path
) -> None:
    """The bound is on lines, as http.client's: a field repeated is joined into one value,
    which must not let a server send header lines without end."""
    server.answer(then_stall(ok(*[b"X-Same: v"] * 101)))
    async with connected(kubeconfig) as transport:
        await fails_at_once(transport, r"the answer has over 100 header fields")


@pytest.mark.parametrize(
    "lengths",
    [
        [b"Content-Length: 19", b"Content-Length: 20"],
        [b"Content-Length: 19, 20"],
        [b"Content-Length: nineteen"],
        [b"Content-Length: -19"],
        [b"Content-Length: +19"],
        [b"Content-Length: \xb2"],  # a digit to str.isdigit, not to int()
    ],
)
async def test_a_content_length_that_is_not_one_length_is_refused(
    server: Canned, kubeconfig: Path, lengths: list[bytes]
) -> None:
    server.answer(then_stall(message(b"HTTP/1.1 200 OK", JSON, *lengths, body=VERSION)))
    async with connected(kubeconfig) as transport:
        await fails_at_once(transport, FAILED + r"the answer's Content-Length is not")


async def test_the_same_content_length_twice_is_one_length(
    server: Canned, kubeconfig: Path
) -> None:
    server.answer(ok(b"Content-Length: 19"), ok())
    assert await read_twice(server, kubeconfig) == [1, 1]


CHUNKED = (b"HTTP/1.1 200 OK", JSON, b"Transfer-Encoding: chunked")


@pytest.mark.parametrize(
    ("chunks", "problem"),
    [
        (b"zz\r\n", "a chunk's size is not a number: b'zz'"),
        (b"\r\n", "a chunk's size is not a number: b''"),
        (b"13\r\n" + VERSION + b"XX\r\n0\r\n\r\n", "a chunk does not end where its size says"),
    ],
)
async def test_a_bad_chunk_is_refused(
    server: Canned, kubeconfig: Path, chunks: bytes, problem: str
) -> None:
    server.answer(then_stall(message(*CHUNKED, body=chunks)))
    async with connected(kubeconfig) as transport:
        await fails_at_once(transport, FAILED + re.escape(problem))


async def test_a_negative_chunk_size_is_refused(
    server: Canned, kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``int(size, 16)`` takes a sign: a negative chunk would take the total down, and the next
    chunk could then be as large as the server likes, past the bound on the answer."""
    monkeypatch.setattr("transporter.kube.trio_client.MAX_ANSWER_BYTES", 1000)
    body = json.dumps({"gitVersion": "v" * 2000}).encode()
    chunks = b"-ffffffff\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    server.answer(then_stall(message(*CHUNKED, body=chunks)))
    async with connected(kubeconfig) as transport:
        await fails_at_once(transport, r"a chunk's size is not a number: b'-ffffffff'")


async def test_chunks_with_extensions_and_trailers_are_read_whole(
    server: Canned, kubeconfig: Path
) -> None:
    """And the trailers too: the connection is in step for the next request, and kept."""
    chunks = (
        b'4;name=value;other="quoted"\r\n{"gi\r\n'
        b"F \r\n" + VERSION[4:] + b"\r\n"
        b"0;last\r\nX-Trailer: one\r\nX-Checksum: two\r\n\r\n"
    )
    server.answer(message(*CHUNKED, body=chunks), ok())
    assert await read_twice(server, kubeconfig) == [1, 1]


async def test_a_body_without_length_is_read_until_the_server_closes(
    server: Canned, kubeconfig: Path
) -> None:
    head = message(b"HTTP/1.1 200 OK", JSON)
    server.answer(then_close(head + VERSION[:8], VERSION[8:]), ok())
    assert await read_twice(server, kubeconfig) == [1, 2]


async def test_a_body_in_an_encoding_not_chunked_is_read_until_the_server_closes(
    server: Canned, kubeconfig: Path
) -> None:
    head = message(b"HTTP/1.1 200 OK", JSON, b"Transfer-Encoding: identity")
    server.answer(then_close(head + VERSION), ok())
    assert await read_twice(server, kubeconfig) == [1, 2]


async def test_informational_answers_are_skipped(server: Canned, kubeconfig: Path) -> None:
    early = message(b"HTTP/1.1 100 Continue") + message(
        b"HTTP/1.1 103 Early Hints", b"Link: </style.css>; rel=preload"
    )
    server.answer(early + ok(), ok(body=b'{"gitVersion":"v2"}'))
    async with connected(kubeconfig) as transport:
        with trio.fail_after(PROMPT):
            assert await version(transport) == {"gitVersion": "v1"}
            assert await version(transport) == {"gitVersion": "v2"}
    assert server.on() == [1, 1]  # nothing of the final answer left unread


async def test_endless_informational_answers_or_trailers_are_refused(
    server: Canned, kubeconfig: Path
) -> None:
    """Each is small, so only a count bounds them (10 informational answers, 100 trailers)."""
    early = message(b"HTTP/1.1 103 Early Hints") * 10
    trailers = b"".join(b"X-T%d: v\r\n" % n for n in range(101))
    server.answer(
        early + ok(),
        early + message(b"HTTP/1.1 100 Continue") + ok(),
        message(*CHUNKED, body=b"0\r\n" + trailers + b"\r\n"),
    )
    async with connected(kubeconfig) as transport:
        with trio.fail_after(PROMPT):
            assert await version(transport) == {"gitVersion": "v1"}
            with pytest.raises(KubeUnavailable, match=f"{FAILED}.*over 10 informational"):
                await version(transport)
            with pytest.raises(KubeUnavailable, match=f"{FAILED}.*over 100 trailer lines"):
                await version(transport)


async def test_an_http_1_0_answer_keeps_its_connection_only_if_it_says_so(
    server: Canned, kubeconfig: Path
) -> None:
    """The server leaves every connection open: only what the answers say closes them."""
    server.answer(
        ok(status=b"HTTP/1.0 200 OK"),
        ok(b"Connection: Keep-Alive", status=b"HTTP/1.0 200 OK"),
        ok(),
    )
    async with connected(kubeconfig) as transport:
        for _ in range(3):
            assert await version(transport) == {"gitVersion": "v1"}
    assert server.on() == [1, 2, 2]


async def test_an_answer_saying_connection_close_is_not_kept(
    server: Canned, kubeconfig: Path
) -> None:
    """The server leaves every connection open: only what the answers say closes them."""
    server.answer(ok(b"Connection: close"), ok(b"Connection: Upgrade, CLOSE"), ok(), ok())
    async with connected(kubeconfig) as transport:
        for _ in range(4):
            assert await version(transport) == {"gitVersion": "v1"}
    assert server.on() == [1, 2, 3, 3]


async def test_an_answer_over_the_bound_is_refused_before_its_body_is_read(
    server: Canned, kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Said by its length, by its chunks or by the bytes come so far: the server sends no more
    (nor closes), so a client reading on would wait for the timeout."""
    monkeypatch.setattr("transporter.kube.trio_client.MAX_ANSWER_BYTES", 1000)
    by_length = message(b"HTTP/1.1 200 OK", JSON, b"Content-Length: 1001", body=b"{")
    chunk = b"258\r\n" + b" " * 0x258 + b"\r\n"
    by_chunks = message(*CHUNKED, body=chunk + b"258\r\n")  # 1200 bytes said
    to_end = message(b"HTTP/1.1 200 OK", JSON, body=b" " * 1500)
    server.answer(then_stall(by_length), then_stall(by_chunks), then_stall(to_end), ok())
    async with connected(kubeconfig) as transport:
        for _ in range(3):
            with (
                trio.fail_after(PROMPT),
                pytest.raises(
                    KubeRejected, match=r"^the API server's answer is over 1000 bytes: not read$"
                ) as refused,
            ):
                await version(transport)
            assert refused.value.code == 200
        assert await version(transport) == {"gitVersion": "v1"}
    assert server.on() == [1, 2, 3, 4]


async def test_bytes_past_an_answer_make_its_connection_unfit(
    server: Canned, kubeconfig: Path
) -> None:
    """A second answer no one asked for, glued on: kept, the connection would give it as the
    answer to the next request."""
    unasked = ok(body=b'{"gitVersion":"unasked"}')
    server.answer(ok() + unasked, ok(body=b'{"gitVersion":"v2"}'))
    async with connected(kubeconfig) as transport:
        assert await version(transport) == {"gitVersion": "v1"}
        assert await version(transport) == {"gitVersion": "v2"}
    assert server.on() == [1, 2]


async def test_a_line_break_in_a_header_is_not_sent(server: Canned, kubeconfig: Path) -> None:
    """Nor any other control character, a space in the target or a header name not a token."""
    server.answer(ok())
    evil = {"Impersonate-User": "a\r\nX-Evil: 1"}
    async with connected(kubeconfig) as transport:
        for headers in (
            evil,
            {"X-Evil: 1\r\nImpersonate-User": "a"},
            {"Impersonate-User": "a\n"},
            {"Impersonate-User": "a\x00"},
            {"Impersonate User": "a"},
        ):
            with pytest.raises(
                KubeConfigError, match=r"^the request cannot be sent: header .* is not a name"
            ):
                await version(transport, headers=headers)
        for target in ("/version HTTP/1.1\r\nX-Evil: 1\r\nX:", "/version x", "/v\x7f"):
            with pytest.raises(KubeConfigError, match=r"request line holds a space or a control"):
                await transport.request("GET", target, retry=NO_RETRY)
        assert server.connections == 0
        assert await version(transport, headers={"Impersonate-User": "a"}) == {"gitVersion": "v1"}
    [(_, head)] = server.requests
    assert b"X-Evil" not in head
    assert b"\r\nImpersonate-User: a\r\n" in head + b"\r\n"


async def test_the_request_names_the_host_and_the_path(server: Canned, kubeconfig: Path) -> None:
    server.answer(ok())
    async with connected(kubeconfig) as transport:
        await transport.request("GET", "/version", query=[("timeout", "5s")], retry=NO_RETRY)
    [(_, head)] = server.requests
    start, *fields = head.split(b"\r\n")
    assert start == b"GET /version?timeout=5s HTTP/1.1"
    hosts = [field for field in fields if field.lower().startswith(b"host:")]
    assert hosts == [b"Host: 127.0.0.1:%d" % server.port]
    assert fields[0] == hosts[0]


async def test_a_body_cut_short_by_an_early_answer_ends_its_connection(
    server: Canned, kubeconfig: Path
) -> None:
    """The server refuses a large body at once and reads on (as a proxy draining it would):
    the rest of the body was never sent, so the connection is not kept, or the next request
    would be read as that body."""

    async def refuse_and_drain(stream: trio.SocketStream) -> None:
        await stream.send_all(message(b"HTTP/1.1 413 Too Large", b"Content-Length: 0"))
        while await stream.receive_some(65536):
            pass

    server.answer(refuse_and_drain, ok())
    async with connected(kubeconfig) as transport:
        with trio.fail_after(PROMPT):
            big = {"data": {"k": "x" * (8 << 20)}}
            with pytest.raises(KubeRejected) as refused:
                await transport.request("POST", "/api/v1/configmaps", body=big, retry=NO_RETRY)
            assert refused.value.code == 413
            assert await version(transport) == {"gitVersion": "v1"}
    assert server.on() == [1, 2]


@attrs.define
class Smuggler:
    """A TLS server whose first connection answers the first request twice: two TLS records in
    one TCP segment (corked), so the client's TLS layer holds the second, unasked, answer."""

    context: ssl.SSLContext
    port: int = 0
    connections: int = 0

    async def handle(self, tcp: trio.SocketStream) -> None:
        self.connections += 1
        first = self.connections == 1
        stream = trio.SSLStream(tcp, self.context, server_side=True, https_compatible=True)
        buffer = b""
        try:
            while read := await next_head(stream, buffer):
                buffer = read[1]
                tcp.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
                await stream.send_all(ok())
                if first:
                    await stream.send_all(ok(body=b'{"smuggled":1}'))
                tcp.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return


async def test_an_answer_tls_holds_unasked_makes_its_connection_unfit(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Nothing of it is in our buffer or on the socket: only TLS's own buffer shows it."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cluster.certs.serving_cert, cluster.certs.serving_key)
    smuggler = Smuggler(context)
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_on_loopback, smuggler, smuggler.handle)
        kubeconfig = pointed_at(cluster, f"https://127.0.0.1:{smuggler.port}", tmp_path)
        async with connected(kubeconfig) as transport:
            with trio.fail_after(PROMPT):
                assert await version(transport) == {"gitVersion": "v1"}
                assert await version(transport) == {"gitVersion": "v1"}
                assert await version(transport) == {"gitVersion": "v1"}
        nursery.cancel_scope.cancel()
    assert smuggler.connections == 2  # the second kept for the third request
