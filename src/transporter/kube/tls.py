"""TLS contexts for an API server: its CAs, and our client certificate when we have one.

``ssl`` loads a certificate and key only from a file: they are written to an anonymous
in-memory file (``memfd``, Linux) so a key from a kubeconfig's ``-data`` or an exec plugin
never touches a disk; elsewhere to a private temporary folder removed at once.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path

from transporter.kube.access import ClientCertificate, ServerTrust

PROC_FD = Path("/proc/self/fd")


def context(trust: ServerTrust, certificate: ClientCertificate | None) -> ssl.SSLContext:
    """A client context; raises :class:`ssl.SSLError` or :class:`ValueError` for unusable
    certificates or keys (the caller names where they came from)."""
    if trust.insecure:
        made = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        made.check_hostname = False
        made.verify_mode = ssl.CERT_NONE
    else:
        cadata = None if trust.ca_pem is None else trust.ca_pem.decode("ascii")
        made = ssl.create_default_context(cadata=cadata)  # only these CAs when given
    made.set_alpn_protocols(["http/1.1"])  # what we speak, said outright
    if certificate is not None:
        with _pem_file(certificate.cert_pem + b"\n" + certificate.key_pem) as path:
            # A passphrase callback that gives none: an encrypted key fails instead of asking
            # on a terminal.
            made.load_cert_chain(path, password=lambda: b"")
    return made


def proxy_context(trust: ServerTrust) -> ssl.SSLContext:
    """For an ``https://`` proxy: checked against the system's CAs (the cluster's CA is for the
    API server), or not at all with ``insecure-skip-tls-verify``."""
    return context(ServerTrust(insecure=trust.insecure), None)


def check_certificate(certificate: ClientCertificate) -> None:
    """Raise :class:`ssl.SSLError` or :class:`ValueError` if the pair cannot be used."""
    context(ServerTrust(insecure=True), certificate)


@contextlib.contextmanager
def _pem_file(data: bytes) -> Iterator[str]:
    if hasattr(os, "memfd_create") and PROC_FD.is_dir():
        fd = os.memfd_create("transporter-client-certificate", os.MFD_CLOEXEC)
        try:
            with open(fd, "wb", closefd=False) as out:
                out.write(data)
            yield str(PROC_FD / str(fd))
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="transporter-") as folder:  # mode 0700
        path = Path(folder) / "client.pem"
        path.touch(mode=0o600)
        path.write_bytes(data)
        yield str(path)
