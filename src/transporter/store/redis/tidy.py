"""coredis connections that tidy up after a failed connect.

coredis 6.9 leaves a connection's memory streams open when the connect itself fails (server
down); anyio then warns ``ResourceWarning: Unclosed MemoryObject...Stream`` when they are
collected. These close them.
"""

from __future__ import annotations

from typing import Any

from coredis.connection import TCPConnection, UnixDomainSocketConnection
from coredis.connection._sentinel import SentinelManagedConnection


class _Tidy:
    """Closes the buffers when ``_connect`` fails (mixed in before a coredis connection)."""

    async def _connect(self) -> Any:
        try:
            return await super()._connect()  # type: ignore[misc]
        except BaseException:
            _close_buffers(self)  # type: ignore[arg-type]
            raise


class _TidyTCPConnection(_Tidy, TCPConnection):
    pass


class _TidyUnixConnection(_Tidy, UnixDomainSocketConnection):
    pass


class _TidySentinelConnection(_Tidy, SentinelManagedConnection):
    pass


TIDY: dict[type[Any], type[Any]] = {
    TCPConnection: _TidyTCPConnection,
    SentinelManagedConnection: _TidySentinelConnection,
    UnixDomainSocketConnection: _TidyUnixConnection,
}
"""The tidy class to use for each of coredis's."""


def _close_buffers(connection: TCPConnection | UnixDomainSocketConnection) -> None:
    for stream in (
        connection._write_buffer_in,
        connection._write_buffer_out,
        connection._push_message_buffer_in,
        connection._push_message_buffer_out,
        connection._streamed_message_buffer_in,
        connection._streamed_message_buffer_out,
    ):
        stream.close()
