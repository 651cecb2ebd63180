"""TLS on the agent channel: the server's context (mutual TLS with the control plane's CA), the
handshake of one connection, and the agent's certificate out of it.

The handshake is done here, before the WebSocket upgrade is read, so that a connection without a
valid certificate (none, another CA's, expired, not for clients) never reaches the agent
channel's code, and a failed handshake is logged with its reason.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import trio

from transporter.cp.tls_stream import TLSStream
from transporter.protocol.identity import IdentityError, PeerCertificate, describe_tls_error

TICKETS = 1
"""Session tickets sent after a handshake: one, as each agent holds one connection."""


class HandshakeFailed(Exception):
    """The TLS handshake did not complete: no or a bad client certificate, not TLS at all, or
    too slow. The message says why, as far as TLS tells."""


def server_context(ca_file: Path, cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """TLS 1.2 or later; a client certificate issued by the CA in ``ca_file`` is required."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(str(cert_file), str(key_file))
    # One session ticket per connection (TLS 1.3; stateless: the server keeps nothing for it),
    # so that an agent that dials again to this process (a cut, a dead connection closed)
    # resumes without the certificate work of a full handshake. The tickets' key is made at
    # start and cannot be set from Python: after a restart every agent shakes hands in full.
    context.num_tickets = TICKETS
    return context


async def handshake(stream: trio.SocketStream, context: ssl.SSLContext) -> TLSStream:
    """The server side of a TLS handshake on ``stream`` (bound it with a cancel scope);
    :class:`HandshakeFailed` unless it completes with a client certificate the CA issued."""
    tls = TLSStream(stream, context)
    try:
        await tls.do_handshake()
    except trio.BrokenResourceError as exc:
        raise HandshakeFailed(describe_tls_error(exc)) from None
    return tls


def peer_certificate(tls: TLSStream) -> PeerCertificate:
    """The verified client certificate of a completed handshake; :class:`IdentityError` when
    it names no agent."""
    der = tls.peer_certificate_der()
    if not der:  # CERT_REQUIRED makes the handshake fail first; kept as a guard
        raise IdentityError("no client certificate")
    return PeerCertificate.of(der)
