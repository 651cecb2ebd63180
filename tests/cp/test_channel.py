"""The agent channel's reading of wsproto's errors: a pong that cannot be sent because we are
closing (the agent's ping crossed our close frame) is an ordinary end, not a failure."""

from __future__ import annotations

import pytest
from wsproto.connection import Connection, ConnectionType
from wsproto.events import CloseConnection, Ping, TextMessage
from wsproto.utilities import LocalProtocolError

from transporter.cp.channel import pong_after_close


def test_a_pong_after_our_close_is_an_ordinary_end() -> None:
    ws = Connection(ConnectionType.SERVER)
    ws.send(CloseConnection(code=1000))
    with pytest.raises(LocalProtocolError) as late:
        ws.send(Ping().response())
    assert pong_after_close(late.value)


def test_other_protocol_errors_are_not() -> None:
    assert not pong_after_close(
        LocalProtocolError("Event TextMessage cannot be sent during handshake")
    )
    ws = Connection(ConnectionType.SERVER)
    ws.send(TextMessage(data="x"))  # open: no error
    assert not pong_after_close(LocalProtocolError("something else"))
