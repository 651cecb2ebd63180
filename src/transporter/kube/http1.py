"""An HTTP/1.1 request written, and its answer read, on a trio stream (:mod:`~.trio_client`).

What the API server sends is read as :mod:`http.client` reads it, with the same bounds and
some more: a line of at most 64 KiB, at most 100 header (and trailer) lines, at most 10
informational answers, a body of at most ``limit`` bytes (past it:
:class:`~transporter.kube.errors.KubeRejected`, the connection not kept). Bodies are delimited
by ``Content-Length``, by chunks (``Transfer-Encoding: chunked``, trailers read and dropped) or
by the end of the connection; informational answers (``1xx``) are skipped. Anything else is
:class:`Malformed`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

import attrs
import trio

from transporter.kube.errors import KubeRejected

MAX_LINE: Final = 64 * 1024
MAX_FIELDS: Final = 100
MAX_INFORMATIONAL: Final = 10
"""Informational answers (``1xx``) skipped before the final one, at most."""
READ_SIZE: Final = 64 * 1024
NO_BODY: Final = frozenset({204, 304})
_TOKEN: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_TARGET: Final = re.compile(r"[\x21-\x7e]+")
_VALUE: Final = re.compile(r"[\t\x20-\x7e\x80-\xff]*")


class Malformed(Exception):
    """The answer is not HTTP/1.1 as a server writes it."""


class Ended(Exception):
    """The connection ended; ``nothing``: before any byte of the answer."""

    def __init__(self, *, nothing: bool) -> None:
        super().__init__("the API server closed the connection" + " before answering" * nothing)
        self.nothing = nothing


def request_bytes(
    method: str, target: str, host: str, headers: Mapping[str, str], body: bytes | None
) -> bytes:
    """The request's head (and body): ``Host`` first, then ``headers``, then the length."""
    if not _TOKEN.fullmatch(method) or not _TARGET.fullmatch(target):
        raise ValueError("the request line holds a space or a control character")
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name) or not _VALUE.fullmatch(value):
            raise ValueError(f"header {name[:40]!r} is not a name, or its value holds a control")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", "Accept-Encoding: identity"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body or b'')}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


@attrs.frozen
class Head:
    status: int
    fields: Mapping[str, str]
    """Lower-cased names; a repeated field's values joined with ``, ``."""
    keep: bool
    """Whether the connection may carry another request after this answer."""
    http10: bool = False


class Reader:
    """Answers read from one connection; bytes past an answer are kept for the next."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buffer = bytearray()
        self.received = False
        """Whether any byte of the answer being read has come."""

    @property
    def idle(self) -> bool:
        """Whether nothing was read past the last answer (else the connection is out of step)."""
        return not self._buffer

    async def _more(self) -> None:
        data = await self._stream.receive_some(READ_SIZE)
        if not data:
            raise Ended(nothing=not self.received)
        self.received = True
        self._buffer += data

    async def _line(self) -> bytes:
        start = 0
        while (end := self._buffer.find(b"\r\n", start)) < 0:
            if len(self._buffer) > MAX_LINE:
                raise Malformed("a line of the answer is over 64 KiB")
            start = max(len(self._buffer) - 1, 0)
            await self._more()
        if end > MAX_LINE:
            raise Malformed("a line of the answer is over 64 KiB")
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 2]
        return line

    async def _exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            await self._more()
        with memoryview(self._buffer) as view:
            data = bytes(view[:size])  # one copy, not two: a body may be 128 MiB
        del self._buffer[:size]
        return data

    async def head(self) -> Head:
        """The head of the next final answer (``1xx`` skipped)."""
        self.received = bool(self._buffer)
        for _ in range(MAX_INFORMATIONAL + 1):
            status, http10 = _status(await self._line())
            fields: dict[str, str] = {}
            lines = 0
            while line := await self._line():
                lines += 1
                if lines > MAX_FIELDS:
                    raise Malformed(f"the answer has over {MAX_FIELDS} header fields")
                name, colon, value = line.decode("latin-1").partition(":")
                if not colon or not name or name != name.strip():
                    raise Malformed(f"a header line of the answer is not a field: {line[:80]!r}")
                name, value = name.lower(), value.strip(" \t")
                fields[name] = f"{fields[name]}, {value}" if name in fields else value
            if status >= 200 or status == 101:  # 101: another protocol follows, not kept
                tokens = {t.strip().lower() for t in fields.get("connection", "").split(",")}
                keep = "keep-alive" in tokens if http10 else "close" not in tokens
                return Head(status, fields, keep and status != 101, http10)
        raise Malformed(f"the answer began with over {MAX_INFORMATIONAL} informational answers")

    async def body(self, head: Head, method: str, *, limit: int) -> tuple[bytes, bool]:
        """The answer's body, and whether the connection may be kept."""
        if method == "HEAD" or head.status in NO_BODY or head.status < 200:
            return b"", head.keep
        encoding = head.fields.get("transfer-encoding")
        if encoding is not None:  # over any Content-Length; then the server is not trusted
            if encoding.rsplit(",", 1)[-1].strip().lower() != "chunked":
                return await self._to_end(head, limit), False
            keep = head.keep and not head.http10 and "content-length" not in head.fields
            return await self._chunked(head, limit), keep
        length = head.fields.get("content-length")
        if length is None:
            return await self._to_end(head, limit), False
        values = {value.strip() for value in length.split(",")}
        if len(values) != 1 or not _digits(size := values.pop(), "0123456789"):
            raise Malformed(f"the answer's Content-Length is not a length: {length[:40]!r}")
        _bounded(head, int(size), limit)
        return await self._exactly(int(size)), head.keep

    async def _chunked(self, head: Head, limit: int) -> bytes:
        body = bytearray()  # not a list of parts: a chunk of one byte would cost 34
        while True:
            line = (await self._line()).split(b";", 1)[0].strip(b" \t")
            if not _digits(line.decode("latin-1"), "0123456789abcdefABCDEF"):
                raise Malformed(f"a chunk's size is not a number: {line[:40]!r}")
            size = int(line, 16)
            if size == 0:
                break
            _bounded(head, len(body) + size, limit)
            body += await self._exactly(size)
            if await self._line():
                raise Malformed("a chunk does not end where its size says")
        for _ in range(MAX_FIELDS + 1):  # trailers, dropped
            if not await self._line():
                return bytes(body)
        raise Malformed(f"the answer has over {MAX_FIELDS} trailer lines")

    async def _to_end(self, head: Head, limit: int) -> bytes:
        try:
            while True:
                _bounded(head, len(self._buffer), limit)
                await self._more()
        except Ended:
            data = bytes(self._buffer)
            self._buffer.clear()
            return data


def _status(line: bytes) -> tuple[int, bool]:
    """The status code of a status line, and whether it is HTTP/1.0."""
    version, _, rest = line.partition(b" ")
    code = rest[:3]
    if version not in (b"HTTP/1.1", b"HTTP/1.0") or not code.isdigit() or rest[3:4] not in b" ":
        raise Malformed(f"the answer does not begin with an HTTP/1.1 status line: {line[:80]!r}")
    status = int(code)
    if not 100 <= status <= 599:
        raise Malformed(f"the answer's status {status} is not one HTTP has")
    return status, version == b"HTTP/1.0"


def _digits(text: str, allowed: str) -> bool:
    """Whether ``text`` is 1 to 16 of the ``allowed`` digits (no sign, space or prefix)."""
    return 0 < len(text) <= 16 and all(char in allowed for char in text)


def _bounded(head: Head, size: int, limit: int) -> None:
    if size > limit:
        raise KubeRejected(
            f"the API server's answer is over {limit} bytes: not read", code=head.status
        )
