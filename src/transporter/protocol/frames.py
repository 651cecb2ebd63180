"""WebSocket frames (RFC 6455) as the agent channel's two ends read and write them, without I/O:
the control plane reads masked frames and writes unmasked ones, the agent the other way round.

The agent channel reads every agent's frames in the control plane's one thread: at rest, one
heartbeat frame per agent and interval, so a frame's cost is what 10,000 agents cost. Read
here directly (a few µs for a small frame) rather than through wsproto's general machinery
(about 27 µs each, ``bench/heartbeat_floor.py``). No extension is ever agreed, so the
reserved bits must be clear.

Every refusal is a :class:`FrameError` with the close code to send: 1002 for a frame that
breaks the protocol (a client's unmasked, a server's masked, reserved bits or opcodes, a
control frame fragmented or over 125 bytes, a continuation with no message or a new message in
the middle of one), 1007 for text that is not UTF-8, 1009 for a message over the limit, known
from the frame's header before its payload is buffered.
"""

from __future__ import annotations

import os
from typing import Final

__all__ = [
    "BINARY",
    "CLOSE",
    "CONTINUATION",
    "PING",
    "PONG",
    "TEXT",
    "FrameError",
    "Reader",
    "close_frame",
    "frame",
]

CONTINUATION: Final = 0x0
TEXT: Final = 0x1
BINARY: Final = 0x2
CLOSE: Final = 0x8
PING: Final = 0x9
PONG: Final = 0xA
NORMAL: Final = 1000
PROTOCOL_ERROR: Final = 1002
INVALID_DATA: Final = 1007
TOO_BIG: Final = 1009
NO_STATUS: Final = 1005
"""The close code of a close frame that carried none (never sent on the wire)."""
_CONTROL_MAX: Final = 125


class FrameError(Exception):
    """The peer broke the protocol: close the connection with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


Received = tuple[int, str | bytes | tuple[int, str]]
"""What :meth:`Reader.next` gives: ``(TEXT, str)``, ``(BINARY, bytes)``, ``(PING, payload)``,
``(PONG, payload)`` or ``(CLOSE, (code, reason))``."""


class Reader:
    """A peer's frames in, whole messages and control frames out. ``masked``: the frames are
    a client's and must be masked (the server reads them); ``False``: a server's, which must
    not be (the client reads them)."""

    def __init__(self, max_message_bytes: int, *, masked: bool = True) -> None:
        self.max_message_bytes = max_message_bytes
        self.masked = masked
        self._buffer = bytearray()
        self._opcode = 0
        """The opcode of the message whose fragments are coming (0: none)."""
        self._parts: list[bytes] = []
        self._size = 0

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next(self) -> Received | None:
        """The next message or control frame, ``None`` until more bytes are fed."""
        while True:
            header = self._header()
            if header is None:
                return None
            fin, opcode, start, length = header
            if len(self._buffer) < start + length:
                return None
            payload = bytes(self._buffer[start : start + length])
            if self.masked:
                payload = _unmask(payload, bytes(self._buffer[start - 4 : start]))
            del self._buffer[: start + length]
            if opcode >= CLOSE:
                return _control(opcode, payload)
            if opcode != CONTINUATION:
                self._opcode = opcode
            if payload:
                self._parts.append(payload)
            # An empty fragment counts as a byte: endless ones end at the limit (1009), not
            # in a list that grows without bound.
            self._size += max(length, 1)
            if fin:
                return self._message()

    def _header(self) -> tuple[bool, int, int, int] | None:
        """``(fin, opcode, payload start, payload length)`` of the frame at the buffer's
        start, checked; ``None`` if its header is not all here yet."""
        buffer = self._buffer
        if len(buffer) < 2:
            return None
        first, second = buffer[0], buffer[1]
        fin, opcode, length = bool(first & 0x80), first & 0x0F, second & 0x7F
        if first & 0x70:
            raise FrameError(PROTOCOL_ERROR, "reserved bits set (no extension was agreed)")
        if bool(second & 0x80) != self.masked:
            said = (
                "a client's frame must be masked" if self.masked else "a server's frame is masked"
            )
            raise FrameError(PROTOCOL_ERROR, said)
        start = 2
        if length == 126:
            start = 4
        elif length == 127:
            start = 10
        key = 4 if self.masked else 0
        if len(buffer) < start + key:
            return None
        if start > 2:
            length = int.from_bytes(buffer[2:start], "big")
        self._check(fin, opcode, length)
        return fin, opcode, start + key, length

    def _check(self, fin: bool, opcode: int, length: int) -> None:
        if opcode >= CLOSE:
            if opcode not in (CLOSE, PING, PONG):
                raise FrameError(PROTOCOL_ERROR, f"unknown opcode {opcode:#x}")
            if not fin or length > _CONTROL_MAX:
                raise FrameError(PROTOCOL_ERROR, "a control frame fragmented or over 125 bytes")
            return
        if opcode not in (CONTINUATION, TEXT, BINARY):
            raise FrameError(PROTOCOL_ERROR, f"unknown opcode {opcode:#x}")
        if opcode == CONTINUATION and not self._opcode:
            raise FrameError(PROTOCOL_ERROR, "a continuation frame with no message begun")
        if opcode != CONTINUATION and self._opcode:
            raise FrameError(PROTOCOL_ERROR, "a new message before the last one ended")
        if self._size + max(length, 1) > self.max_message_bytes:  # an empty frame: a byte
            raise FrameError(TOO_BIG, f"message over {self.max_message_bytes} bytes")

    def _message(self) -> Received:
        opcode, parts = self._opcode, self._parts
        self._opcode, self._parts, self._size = 0, [], 0
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        if opcode == BINARY:
            return BINARY, data
        try:
            return TEXT, data.decode("utf-8")
        except UnicodeDecodeError:
            raise FrameError(INVALID_DATA, "a text message that is not UTF-8") from None


def _control(opcode: int, payload: bytes) -> Received:
    if opcode != CLOSE:
        return opcode, payload
    if not payload:
        return CLOSE, (NO_STATUS, "")
    if len(payload) == 1:
        raise FrameError(PROTOCOL_ERROR, "a close frame of one byte")
    code = int.from_bytes(payload[:2], "big")
    if not (1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999):
        raise FrameError(PROTOCOL_ERROR, f"close code {code} may not be sent")
    try:
        return CLOSE, (code, payload[2:].decode("utf-8"))
    except UnicodeDecodeError:
        raise FrameError(INVALID_DATA, "a close reason that is not UTF-8") from None


def _unmask(payload: bytes, key: bytes) -> bytes:
    """``payload`` XOR the 4-byte ``key``, repeated (at C speed, as one big integer)."""
    size = len(payload)
    if not size:
        return b""
    mask = (key * (size // 4 + 1))[:size]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(mask, "little")).to_bytes(
        size, "little"
    )


def frame(opcode: int, payload: bytes, *, mask: bool = False, fin: bool = True) -> bytes:
    """One frame: unmasked (a server's), or ``mask``-ed with a new random key (a client's);
    ``fin=False`` for a message's fragment but its last (those after it are ``CONTINUATION``)."""
    size = len(payload)
    first = (0x80 if fin else 0) | opcode
    bit = 0x80 if mask else 0
    if size < 126:
        head = bytes((first, bit | size))
    elif size < 1 << 16:
        head = bytes((first, bit | 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((first, bit | 127)) + size.to_bytes(8, "big")
    if mask:
        key = os.urandom(4)
        return head + key + _unmask(payload, key)
    return head + payload


def close_frame(code: int, reason: str, *, mask: bool = False) -> bytes:
    """A close frame: ``code`` and ``reason`` (cut to fit a control frame)."""
    said = reason.encode()[: _CONTROL_MAX - 2]
    while said:  # not in the middle of a character
        try:
            said.decode()
            break
        except UnicodeDecodeError:
            said = said[:-1]
    return frame(CLOSE, code.to_bytes(2, "big") + said, mask=mask)
