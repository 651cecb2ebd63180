"""The agent channel's WebSocket, in the task that serves the connection: the HTTP upgrade
with wsproto's handshake (h11), then frames read and written by
:mod:`transporter.protocol.frames` over the (TLS) stream.

trio-websocket gives every connection a reader task and a message channel beside the task
that serves it: with 10,000 agents at rest, a third of the control plane's memory per
connection and a third of the CPU their heartbeats cost. Here the serving task reads the
frames itself: one task per connection, a ping answered as it is read, and (protocol 4) a
ping or an unsolicited pong is the agent's heartbeat: :meth:`Socket.receive` returns ``None``
for either.

Bounds: the upgrade request is h11's (16 KiB of headers), a message is at most
``max_message_bytes`` (closed with 1009, known from a frame's header before its payload is
read), and each read takes at most :data:`RECEIVE_BYTES`.
"""

from __future__ import annotations

import contextlib
from typing import Final, cast

import trio
from wsproto.connection import ConnectionType
from wsproto.events import AcceptConnection, RejectConnection, RejectData, Request
from wsproto.handshake import H11Handshake
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from transporter.protocol import frames

__all__ = ["Closed", "Socket", "Upgrade"]

RECEIVE_BYTES: Final = 64 * 1024
"""Bytes one read takes from the stream at most."""
MESSAGE_TOO_BIG: Final = frames.TOO_BIG
ABNORMAL: Final = 1006
"""The close code of a stream that ended without a close frame (never sent on the wire)."""

Stream = trio.abc.Stream
_GONE = (trio.BrokenResourceError, trio.ClosedResourceError)


class Closed(Exception):
    """The WebSocket ended: by the agent's close frame, a broken stream (1006), or by us."""

    def __init__(self, code: int, reason: str = "", *, by_us: bool = False) -> None:
        super().__init__(f"closed ({code}){': ' + reason if reason else ''}")
        self.code = code
        self.reason = reason
        self.by_us = by_us


class Upgrade:
    """The HTTP upgrade of one connection: read the request, then accept or reject it."""

    def __init__(self, stream: Stream, *, max_message_bytes: int) -> None:
        self.stream = stream
        self.max_message_bytes = max_message_bytes
        self._handshake: H11Handshake | None = H11Handshake(ConnectionType.SERVER)
        """Dropped once answered: h11's state is no use to an open connection."""
        self.path = ""

    def _shake(self) -> H11Handshake:
        if self._handshake is None:
            raise LocalProtocolError("the upgrade was answered already")
        return self._handshake

    async def request(self) -> bool:
        """Read the upgrade request (``path`` is then its target); ``False`` when the stream
        ended first or the request was not a WebSocket upgrade (answered 400 or 426)."""
        handshake = self._shake()
        while True:
            try:
                data = cast(bytes, await self.stream.receive_some(RECEIVE_BYTES))
                handshake.receive_data(data or None)
            except RemoteProtocolError as exc:
                hint = exc.event_hint
                if isinstance(hint, RejectConnection):
                    with contextlib.suppress(*_GONE, LocalProtocolError):
                        await self.stream.send_all(handshake.send(hint))
                return False
            for event in handshake.events():
                if isinstance(event, Request):
                    self.path = event.target
                    return True
            if not data:
                return False

    async def reject(self, status: int, body: str) -> None:
        """Answer the request with ``status`` and a line of text."""
        handshake = self._shake()
        self._handshake = None
        head = RejectConnection(
            status_code=status, headers=[(b"content-type", b"text/plain")], has_body=True
        )
        data = handshake.send(head) + handshake.send(RejectData(body.encode()))
        with contextlib.suppress(*_GONE):
            await self.stream.send_all(data)

    async def accept(self) -> Socket:
        """Switch to WebSocket (no extensions, no subprotocol)."""
        handshake = self._shake()
        self._handshake = None
        await self.stream.send_all(handshake.send(AcceptConnection()))
        return Socket(self.stream, max_message_bytes=self.max_message_bytes)


class Socket:
    """An accepted WebSocket: messages in (:meth:`receive`, one task) and out
    (:meth:`send_message`, from any task: sends take turns)."""

    def __init__(self, stream: Stream, *, max_message_bytes: int) -> None:
        self.stream = stream
        self._reader = frames.Reader(max_message_bytes)
        self._sending = trio.Lock()
        self._sent_close = False
        self._got_close = False

    async def receive(self) -> str | bytes | None:
        """The next message, or ``None`` for a ping (answered already) or an unsolicited pong
        (RFC 6455's one-way heartbeat): the agent is there and said nothing. Raises
        :class:`Closed` when the WebSocket ends (a frame that breaks the protocol is answered
        with a close frame first)."""
        while True:
            try:
                found = self._reader.next()
            except frames.FrameError as exc:
                await self._send_close(exc.code, exc.reason)
                raise Closed(exc.code, exc.reason, by_us=True) from None
            if found is None:  # read here, not in _fill: an idle connection waits here, and
                try:  # each coroutine on its await chain is memory (10,000 of them)
                    data = await self.stream.receive_some(RECEIVE_BYTES)
                except _GONE:
                    data = b""
                self._feed(data)
                continue
            opcode, value = found
            if opcode == frames.PING:
                await self._send(frames.frame(frames.PONG, cast(bytes, value)))
                return None
            if opcode == frames.PONG:
                return None  # we send no pings: an unsolicited one, a heartbeat
            if opcode == frames.CLOSE:
                code, reason = cast(tuple[int, str], value)
                self._got_close = True
                answer = frames.NORMAL if code == frames.NO_STATUS else code
                with contextlib.suppress(Closed):
                    await self._send_close(answer, "")
                raise Closed(code, reason)
            return cast(str | bytes, value)

    async def _fill(self) -> None:
        try:
            data = await self.stream.receive_some(RECEIVE_BYTES)
        except _GONE:
            data = b""
        self._feed(data)

    def _feed(self, data: bytes | bytearray) -> None:
        if not data:
            raise Closed(ABNORMAL, "the stream ended")
        self._reader.feed(bytes(data))

    async def send_message(self, text: str) -> None:
        """Send one text message; raises :class:`Closed` once the WebSocket is closing."""
        await self._send(frames.frame(frames.TEXT, text.encode()))

    async def _send(self, data: bytes) -> None:
        async with self._sending:
            if self._sent_close:
                raise Closed(frames.NORMAL, "closing", by_us=True)
            await self._write(data)

    async def _write(self, data: bytes) -> None:
        try:
            await self.stream.send_all(data)
        except _GONE as exc:
            raise Closed(ABNORMAL, str(exc) or "broken") from exc

    async def _send_close(self, code: int, reason: str) -> None:
        async with self._sending:
            if not self._sent_close:
                self._sent_close = True
                await self._write(frames.close_frame(code, reason))

    async def close(self, code: int = frames.NORMAL, reason: str = "") -> None:
        """Send a close frame (if none was), then read until the agent's answer or the end of
        the stream, so that what we sent last is not lost to a reset. Bound it with a cancel
        scope: the stream is closed by whoever opened it."""
        with contextlib.suppress(Closed):
            await self._send_close(code, reason)
        with contextlib.suppress(Closed, frames.FrameError):
            while not self._got_close:
                found = self._reader.next()
                if found is None:
                    await self._fill()
                elif found[0] == frames.CLOSE:
                    self._got_close = True  # what came before it is not read
