"""The agent's end of a WebSocket (RFC 6455) once upgraded: frames read and written by
:mod:`transporter.protocol.frames` (masked as a client's, the server's refused if masked), one
reader task, sends that take turns, pings and pongs, and the close handshake.

The reader (:meth:`Channel.run`, in the connection's nursery) reads every frame: it answers
pings, wakes the :meth:`Channel.ping` its pong answers, and hands messages (fragments put
together, up to the size given; a larger one is refused with 1009) to :meth:`Channel.receive`
one at a time. It never raises: however the connection ends (a close frame, a broken stream, a
frame that breaks the protocol) is kept, and every call after that raises
:class:`ChannelClosed` saying so.
"""

from __future__ import annotations

import contextlib
import os
from typing import Final, cast

import trio

from transporter.protocol import frames
from transporter.protocol.identity import describe_tls_error

__all__ = ["Channel", "ChannelClosed", "ChannelError", "DialError", "Stream"]

RECEIVE_BYTES: Final = 64 * 1024
"""Bytes one read takes from the stream at most."""

Stream = trio.SocketStream | trio.SSLStream[trio.SocketStream]
_GONE = (trio.BrokenResourceError, trio.ClosedResourceError)


class ChannelError(Exception):
    """The channel to the control plane failed; the message says how, in a line."""


class DialError(ChannelError):
    """The connection could not be set up; the message says at which step and why."""


class ChannelClosed(ChannelError):
    """The connection ended (closed by the control plane, or broken under us)."""


class Channel:
    """A connected WebSocket, in the channel's terms: text messages, pings, and
    :class:`ChannelClosed` whichever way it ends."""

    def __init__(self, stream: Stream, reader: frames.Reader, *, resumed: bool = False) -> None:
        """``reader``: the server's frames (unmasked), with what came after the upgrade's
        answer fed already."""
        self.stream = stream
        self.resumed = resumed
        """Whether TLS resumed the session of an earlier connection (no full handshake)."""
        self._frames = reader
        self._sending = trio.Lock()
        self._sent_close = False
        self._incoming, self._messages = trio.open_memory_channel[str | bytes](1)
        self._pings: dict[bytes, trio.Event] = {}
        self._ended = trio.Event()
        """Set when the reader stopped: the peer's close frame came, or the stream ended."""
        self._why: str | None = None
        """How the connection ended (the first thing that ended it)."""

    async def send(self, text: str) -> None:
        await self._send(frames.TEXT, text.encode())

    async def receive(self) -> str | bytes:
        try:
            return await self._messages.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise self._closed() from None

    async def beat(self) -> None:
        """An unsolicited pong: a heartbeat that asks for no answer."""
        await self._send(frames.PONG, b"")

    async def ping(self) -> None:
        """Return once the control plane answered a ping (bound it with a cancel scope)."""
        payload = os.urandom(4)
        answered = self._pings[payload] = trio.Event()
        try:
            if self._ended.is_set():
                raise self._closed()
            await self._send(frames.PING, payload)
            await answered.wait()
        finally:
            unanswered = self._pings.pop(payload, None) is not None
        if unanswered:  # woken by the end of the connection
            raise self._closed()

    async def aclose(self) -> None:
        """Send a close frame (if none was), then wait for the control plane's (bound it with
        a cancel scope). The stream is closed by whoever opened it."""
        await self._send_close(frames.NORMAL, "")
        # Messages nobody will read are dropped, so that the reader gets to the close answer.
        self._messages.close()
        await self._ended.wait()

    # --- the reader ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Read every frame until the connection ends (run it in a task of its own)."""
        async with self._incoming:  # closed last: receive() then says how it ended
            try:
                await self._read()
            except frames.FrameError as exc:
                self._end(f"the connection was closed ({exc.code}): {exc.reason}")
                await self._send_close(exc.code, exc.reason)
            except _GONE as exc:
                self._end(f"the connection broke: {describe_tls_error(exc)}")
            finally:
                self._end("the connection was closed")
                for waiting in self._pings.values():
                    waiting.set()
                self._ended.set()

    async def _read(self) -> None:
        while True:
            found = self._frames.next()
            if found is None:
                data = await self.stream.receive_some(RECEIVE_BYTES)
                if not data:
                    self._end("the connection broke: the control plane closed it unannounced")
                    return
                self._frames.feed(bytes(data))
                continue
            opcode, value = found
            if opcode == frames.PING:
                await self._send_control(frames.PONG, cast(bytes, value))
            elif opcode == frames.PONG:
                self._ponged(cast(bytes, value))
            elif opcode == frames.CLOSE:
                code, reason = cast(tuple[int, str], value)
                said = f": {reason}" if reason else ""
                self._end(f"the control plane closed the connection ({code}{said})")
                answer = frames.NORMAL if code == frames.NO_STATUS else code
                await self._send_close(answer, "")
                return
            else:
                with contextlib.suppress(trio.BrokenResourceError):  # closing: none will read it
                    await self._incoming.send(cast(str | bytes, value))

    def _ponged(self, payload: bytes) -> None:
        """Wake the ping ``payload`` answers, and those sent before it (a pong may answer
        several: RFC 6455 lets a peer answer the last ping only)."""
        if payload not in self._pings:
            return  # unsolicited: a heartbeat
        for sent in list(self._pings):
            self._pings.pop(sent).set()
            if sent == payload:
                break

    # --- sending ------------------------------------------------------------------------------

    async def _send(self, opcode: int, payload: bytes) -> None:
        async with self._sending:
            if self._sent_close or self._ended.is_set():
                raise self._closed()
            await self._write(frames.frame(opcode, payload, mask=True))

    async def _send_control(self, opcode: int, payload: bytes) -> None:
        """A frame the reader sends (a pong, a close): a broken stream ends it, not the reader."""
        with contextlib.suppress(ChannelClosed):
            await self._send(opcode, payload)

    async def _send_close(self, code: int, reason: str) -> None:
        async with self._sending:
            if self._sent_close:
                return
            self._sent_close = True
            with contextlib.suppress(ChannelClosed):
                await self._write(frames.close_frame(code, reason, mask=True))

    async def _write(self, data: bytes) -> None:
        try:
            await self.stream.send_all(data)
        except _GONE as exc:
            self._end(f"the connection broke: {describe_tls_error(exc)}")
            raise self._closed() from exc

    def _end(self, why: str) -> None:
        if self._why is None:
            self._why = why

    def _closed(self) -> ChannelClosed:
        return ChannelClosed(self._why or "the connection is closing")
