"""A lean server-side TLS stream for the agent channel: OpenSSL over memory BIOs on the
connection's socket, with what an agent connection needs and no more.

trio's :class:`trio.SSLStream` is general (renegotiation, concurrent calls checked, several
locks); reading one idle agent's heartbeat through it cost 76 µs of CPU here, against 50 µs
for the same wait, ``recv`` and decryption done directly (``bench/heartbeat_floor.py``). With
10,000 agents that difference is a tenth of a core. This stream is for one reader task and
senders that take turns (:class:`~transporter.cp.framing.Socket` holds the turn): reading
never writes (what TLS has to say of its own, a key update's answer, goes with the next send,
as RFC 8446 allows). Like trio's with ``https_compatible``, it neither sends nor awaits
``close_notify``.
"""

from __future__ import annotations

import os
import ssl
from typing import Final

import trio

from transporter.protocol.identity import describe_tls_error

__all__ = ["TLSStream"]

READ_BYTES: Final = 64 * 1024
"""Bytes read from the socket, or decrypted, at once at most."""


class TLSStream(trio.abc.Stream):
    """The server side of TLS on ``transport`` (a TCP stream): call :meth:`do_handshake`
    first. Errors of TLS or of the socket are :class:`trio.BrokenResourceError` (the TLS
    error as its cause)."""

    def __init__(self, transport: trio.SocketStream, context: ssl.SSLContext) -> None:
        self.transport_stream = transport
        self._fd = transport.socket.fileno()
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)

    async def do_handshake(self) -> None:
        while True:
            try:
                self._tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                await self._flush()
                await self._fill_once()
            except ssl.SSLError as exc:
                await self._flush_quietly()  # the alert, so that the agent knows why
                raise trio.BrokenResourceError(describe_tls_error(exc)) from exc
        await self._flush()  # the last flight and the session ticket

    def peer_certificate_der(self) -> bytes | None:
        """The client's certificate (DER), once the handshake is done."""
        return self._tls.getpeercert(binary_form=True)

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Decrypted bytes, ``b""`` at the end (``close_notify`` or the socket's end). The
        wait is inline, not in a helper: an idle connection waits here, and each coroutine
        on its await chain is memory per connection."""
        fd = self._fd
        while True:
            try:
                return self._tls.read(max_bytes or READ_BYTES)
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLZeroReturnError:
                return b""
            except ssl.SSLError as exc:
                raise trio.BrokenResourceError(describe_tls_error(exc)) from exc
            await trio.lowlevel.wait_readable(fd)
            if not self._take():
                return b""

    async def _fill_once(self) -> None:
        await trio.lowlevel.wait_readable(self._fd)
        self._take()

    def _take(self) -> bool:
        """Hand what the socket holds to TLS; ``False`` at its end."""
        try:
            data = os.read(self._fd, READ_BYTES)
        except BlockingIOError:
            return True  # woken for nothing: wait again
        except OSError as exc:
            raise trio.BrokenResourceError(str(exc)) from exc
        if not data:
            self._incoming.write_eof()
            return False
        self._incoming.write(data)
        return True

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        try:
            self._tls.write(data)
        except ssl.SSLError as exc:
            raise trio.BrokenResourceError(describe_tls_error(exc)) from exc
        await self._flush()

    async def wait_send_all_might_not_block(self) -> None:
        await self.transport_stream.wait_send_all_might_not_block()

    async def _flush(self) -> None:
        """Send what TLS wrote, in the order written (the caller's sends take turns)."""
        if self._outgoing.pending:
            await self.transport_stream.send_all(self._outgoing.read())

    async def _flush_quietly(self) -> None:
        try:
            with trio.move_on_after(1):
                await self._flush()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async def aclose(self) -> None:
        await self.transport_stream.aclose()
