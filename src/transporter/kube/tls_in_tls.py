"""TLS inside TLS: the API server's session carried through the tunnel of an ``https://`` proxy.

``ssl`` wraps only a plain socket, so the inner session is an :class:`ssl.SSLObject` over memory
buffers whose records go through the proxy's TLS socket. Blocking, with the outer socket's
timeout. It offers only what :mod:`http.client` uses of a socket.
"""

from __future__ import annotations

import io
import ssl
from collections.abc import Buffer, Callable
from typing import cast

RECORDS = 64 * 1024
"""Bytes read from, or handed to, the outer socket at a time."""


class TlsInTls:
    """A client TLS session with ``server_hostname`` inside the connected socket ``outer``."""

    def __init__(
        self, outer: ssl.SSLSocket, context: ssl.SSLContext, server_hostname: str | None
    ) -> None:
        self._outer = outer
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(
            self._incoming, self._outgoing, server_hostname=server_hostname
        )
        self._run(self._tls.do_handshake)

    def _run[T, *A](self, step: Callable[[*A], T], *args: *A) -> T:
        """``step`` again until it needs no more bytes from the peer; what it wrote is sent."""
        while True:
            try:
                result = step(*args)
            except ssl.SSLWantReadError:
                self._flush()
                if self._incoming.eof:  # cannot happen with OpenSSL; never loop on it
                    raise ssl.SSLEOFError("EOF in the tunnelled TLS session") from None
                data = self._outer.recv(RECORDS)
                if data:
                    self._incoming.write(data)
                else:
                    self._incoming.write_eof()
                continue
            self._flush()
            return result

    def _flush(self) -> None:
        pending = self._outgoing.read()
        if pending:
            self._outer.sendall(pending)

    def sendall(self, data: Buffer) -> None:
        view = memoryview(data).cast("B")
        while view:
            part = view[:RECORDS]  # the memory buffer holds one slice at a time, not the body
            written = self._run(self._tls.write, part)
            view = view[written:]

    def recv_into(self, buffer: bytearray | memoryview, nbytes: int = 0) -> int:
        size = nbytes or len(buffer)
        try:
            return self._run(self._read_into, buffer, size)
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            return 0  # the end, as a socket's TLS reports it (suppress_ragged_eofs)

    def _read_into(self, buffer: bytearray | memoryview, size: int) -> int:
        # Given a buffer, read() fills it and answers how much (typeshed says bytes).
        return cast(int, self._tls.read(size, buffer))

    def makefile(self, mode: str = "rb") -> io.BufferedReader:
        if mode != "rb":
            raise ValueError(f"only 'rb', not {mode!r}")
        return io.BufferedReader(_Reader(self))

    def pending(self) -> int:
        """Bytes received but not read yet, at either level."""
        return self._tls.pending() + self._incoming.pending + self._outer.pending()

    def fileno(self) -> int:
        return self._outer.fileno()

    def settimeout(self, timeout: float | None) -> None:
        self._outer.settimeout(timeout)

    def close(self) -> None:
        self._outer.close()


class _Reader(io.RawIOBase):
    def __init__(self, session: TlsInTls) -> None:
        super().__init__()
        self._session = session

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Buffer) -> int:
        return self._session.recv_into(memoryview(buffer).cast("B"))
