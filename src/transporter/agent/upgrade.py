"""The WebSocket upgrade (RFC 6455, section 4), the client's side, written here: the request
(``GET`` with ``Upgrade: websocket`` and a new ``Sec-WebSocket-Key``), then the answer's head,
read up to :data:`HEAD_BYTES`, accepted only as ``HTTP/1.1 101`` with ``Upgrade: websocket``,
``Connection: upgrade`` and the ``Sec-WebSocket-Accept`` the key asks for. Any other status is
the control plane's refusal: its body (a line of text) is read, briefly, and said.

The stream breaking or ending before the answer's head raises :class:`Broken` (the caller
knows what that means: with TLS 1.3 a refused certificate shows only then).
"""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Final

import trio

from transporter.agent.websocket import RECEIVE_BYTES, DialError, Stream

__all__ = ["HEAD_BYTES", "Broken", "accept_key", "new_key", "request", "upgrade"]

HEAD_BYTES: Final = 16 * 1024
"""Bytes of the answer's head (status line and headers) read at most."""
BODY_BYTES: Final = 16 * 1024
"""Bytes of a refusal's body read at most (500 of them are said)."""
BODY_WAIT: Final = 2.0
"""Seconds a refusal's body is waited for at most (what came by then is said)."""
_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Broken(Exception):
    """The stream broke (``error``: how) or ended (``None``) before the answer's head."""

    def __init__(self, error: BaseException | None) -> None:
        super().__init__(str(error) if error else "the stream ended")
        self.error = error


def new_key() -> str:
    return base64.b64encode(os.urandom(16)).decode()


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` a server answers ``key`` with."""
    return base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()  # noqa: S324


def request(host: str, resource: str, key: str) -> bytes:
    return (
        f"GET {resource} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


async def upgrade(stream: Stream, host: str, resource: str, where: str) -> bytes:
    """Upgrade the connection on ``stream``; what came after the answer's head (the first
    frames). :class:`DialError` when refused or answered wrong, :class:`Broken` when the
    stream broke or ended first."""
    key = new_key()
    try:
        await stream.send_all(request(host, resource, key))
        head, rest = await _head(stream, where)
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        raise Broken(exc) from exc
    status, headers = _parse(head, where)
    if status != 101:
        body = await _body(stream, headers, rest)
        said = body.decode(errors="replace").strip()[:500]
        raise DialError(f"refused with HTTP {status}{': ' + said if said else ''}")
    problem = _wrong(headers, key)
    if problem:
        raise DialError(f"the WebSocket upgrade with {where} failed: {problem}")
    return rest


async def _head(stream: Stream, where: str) -> tuple[bytes, bytes]:
    buffer = bytearray()
    while (end := buffer.find(b"\r\n\r\n")) < 0 and len(buffer) <= HEAD_BYTES:
        data = await stream.receive_some(RECEIVE_BYTES)
        if not data:
            raise Broken(None)
        buffer += data
    if end < 0 or end > HEAD_BYTES:
        raise DialError(
            f"the WebSocket upgrade with {where} failed: the answer's head is over"
            f" {HEAD_BYTES} bytes"
        )
    return bytes(buffer[:end]), bytes(buffer[end + 4 :])


def _parse(head: bytes, where: str) -> tuple[int, dict[str, str]]:
    """The status and the headers (by lower-case name, repeated ones joined with commas)."""
    status_line, *lines = head.decode("latin-1").split("\r\n")
    version, _, rest = status_line.partition(" ")
    code = rest[:3]
    if version != "HTTP/1.1" or not code.isdigit() or rest[3:4] not in ("", " "):
        said = status_line[:100]
        raise DialError(
            f"the WebSocket upgrade with {where} failed: not an HTTP/1.1 answer: {said!r}"
        )
    headers: dict[str, str] = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon:
            raise DialError(f"the WebSocket upgrade with {where} failed: a malformed header line")
        name = name.strip().lower()
        value = value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return int(code), headers


def _tokens(value: str) -> set[str]:
    return {token.strip().lower() for token in value.split(",")}


def _wrong(headers: dict[str, str], key: str) -> str | None:
    """What is wrong with a 101 answer to ``key``, or ``None``."""
    if "websocket" not in _tokens(headers.get("upgrade", "")):
        return "the answer has no 'Upgrade: websocket'"
    if "upgrade" not in _tokens(headers.get("connection", "")):
        return "the answer has no 'Connection: upgrade'"
    if headers.get("sec-websocket-accept") != accept_key(key):
        return "the answer's Sec-WebSocket-Accept does not match the key sent"
    for asked in ("sec-websocket-extensions", "sec-websocket-protocol"):
        if asked in headers:
            return f"the answer names {asked} when none was offered"
    return None


async def _body(stream: Stream, headers: dict[str, str], rest: bytes) -> bytes:
    """A refusal's body, as much as came within :data:`BODY_WAIT` (up to :data:`BODY_BYTES`)."""
    chunked = "chunked" in _tokens(headers.get("transfer-encoding", ""))
    length = headers.get("content-length", "")
    want = min(int(length), BODY_BYTES) if length.isdigit() and not chunked else BODY_BYTES
    data = bytearray(rest)
    with trio.move_on_after(BODY_WAIT):
        while len(data) < want and not (chunked and _dechunk(bytes(data))[1]):
            try:
                more = await stream.receive_some(RECEIVE_BYTES)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                break
            if not more:
                break
            data += more
    return _dechunk(bytes(data))[0] if chunked else bytes(data[:want])


def _dechunk(data: bytes) -> tuple[bytes, bool]:
    """The body in a chunked transfer's ``data`` so far, and whether it is all there."""
    body, at = bytearray(), 0
    while (end := data.find(b"\r\n", at)) >= 0:
        size_text = data[at:end].split(b";")[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            return bytes(body), True  # not chunked after all: what came is all there is
        if size == 0:
            return bytes(body), True
        if len(data) < end + 2 + size:
            body += data[end + 2 :]  # the chunk so far
            break
        body += data[end + 2 : end + 2 + size]
        at = end + 4 + size
    return bytes(body), False
