"""A real redis-server (the Debian package) on a free port, for the Redis store's tests.

Optionally locked as a managed Redis would be (:class:`RedisSecurity`): a password for the
default user (``requirepass``), ACL users, and TLS only (``--port 0 --tls-port``) with
certificates from the test bed's own CA (:mod:`tests.bed.certs`), client certificates required.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlencode

import attrs

from tests.bed.certs import ClusterCerts, make_cluster_certs
from tests.bed.process import Child, PortClash, free_port

START_TIMEOUT = 30.0
PORT_CLASH_ATTEMPTS = 3


@attrs.frozen
class RedisSecurity:
    password: str | None = attrs.field(default=None, repr=False)
    """``requirepass``: the default user's password."""
    users: tuple[tuple[str, str, str], ...] = ()
    """ACL users: ``(name, password, rules)``, rules as ``ACL SETUSER`` takes them
    (``~transporter:* +@all -@dangerous``)."""
    tls: bool = False
    """TLS only, client certificates required; the certificates are made in the folder."""


@attrs.define(eq=False)
class RedisServer:
    host: str
    port: int
    folder: Path
    child: Child = attrs.field(repr=False)
    """The running redis-server; another one after :meth:`restart`."""
    aof: bool = False
    security: RedisSecurity = RedisSecurity()

    @property
    def url(self) -> str:
        """As the default user, with its password and the client certificate when needed."""
        return self.url_as(None, self.security.password)

    @property
    def certs(self) -> ClusterCerts:
        """The CA, the server's certificate and a client certificate (``admin``), with TLS."""
        return _certs(self.folder)

    def url_as(self, user: str | None, password: str | None, *, client_cert: bool = True) -> str:
        """A store URL for ``user`` (``None``: the default user) with ``password``."""
        auth = ""
        if password is not None:
            auth = f"{quote(user or '', safe='')}:{quote(password, safe='')}@"
        if not self.security.tls:
            return f"redis://{auth}{self.host}:{self.port}/0"
        query = {"ssl_ca_certs": str(self.certs.ca_cert)}
        if client_cert:
            query |= {"ssl_certfile": str(self.certs.admin_cert)}
            query |= {"ssl_keyfile": str(self.certs.admin_key)}
        return f"rediss://{auth}{self.host}:{self.port}/0?{urlencode(query)}"

    def kill(self) -> None:
        """kill -9 of the server: what it had not written to its files is gone."""
        self.child.kill()

    def restart(self) -> None:
        """Start redis-server again on the same port and folder (so with the same files), after
        :meth:`kill` or a stop, and wait until it answers PING, its files loaded. A port taken
        by another process in between raises :class:`PortClash`: it cannot move."""
        if self.child.alive():
            raise RuntimeError(f"redis-server on port {self.port} is still running")
        self.child = _launch(self.port, self.folder, aof=self.aof, security=self.security)


def _certs(folder: Path) -> ClusterCerts:
    tls = folder / "tls"
    return ClusterCerts(
        ca_cert=tls / "ca.crt",
        serving_cert=tls / "apiserver.crt",
        serving_key=tls / "apiserver.key",
        sa_public=tls / "sa.pub",
        sa_private=tls / "sa.key",
        admin_cert=tls / "admin.crt",
        admin_key=tls / "admin.key",
    )


def _ping(port: int, security: RedisSecurity, folder: Path) -> bool:
    try:
        with contextlib.ExitStack() as stack:
            sock = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=1))
            if security.tls:
                certs = _certs(folder)
                context = ssl.create_default_context(cafile=str(certs.ca_cert))
                context.load_cert_chain(str(certs.admin_cert), str(certs.admin_key))
                sock = stack.enter_context(context.wrap_socket(sock, server_hostname="127.0.0.1"))
            if security.password is not None:
                secret = security.password.encode()
                sock.sendall(b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(secret), secret))
                if not sock.recv(64).startswith(b"+OK"):
                    return False
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _launch(
    port: int, folder: Path, *, aof: bool, security: RedisSecurity = RedisSecurity()
) -> Child:
    argv = [
        shutil.which("redis-server") or "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(folder),
        "--save",
        "",
        "--daemonize",
        "no",
        "--protected-mode",
        "yes",
        "--appendonly",
        "yes" if aof else "no",
    ]
    if aof:
        argv += ["--appendfsync", "always"]
    if security.password is not None:
        argv += ["--requirepass", security.password]
    for name, password, rules in security.users:
        argv += ["--user", name, "on", f">{password}", *rules.split()]
    if security.tls:
        certs = _certs(folder)
        if not certs.ca_cert.exists():
            make_cluster_certs(folder / "tls")
        argv[argv.index("--port") + 1] = "0"  # TLS only
        argv += ["--tls-port", str(port), "--tls-auth-clients", "yes"]
        argv += ["--tls-cert-file", str(certs.serving_cert)]
        argv += ["--tls-key-file", str(certs.serving_key)]
        argv += ["--tls-ca-cert-file", str(certs.ca_cert)]
    child = Child(argv, folder / "redis.log")
    deadline = time.monotonic() + START_TIMEOUT
    while not _ping(port, security, folder):  # -LOADING, not +PONG, until its files are read
        child.check_alive()
        if time.monotonic() > deadline:
            child.stop()
            raise TimeoutError(f"redis-server not answering PING:\n{child.tail()}")
        time.sleep(0.02)
    return child


def _start(folder: Path, *, aof: bool, security: RedisSecurity) -> RedisServer:
    port = free_port()
    child = _launch(port, folder, aof=aof, security=security)
    return RedisServer("127.0.0.1", port, folder, child, aof=aof, security=security)


@contextlib.contextmanager
def running_redis(
    folder: Path, *, aof: bool = False, security: RedisSecurity = RedisSecurity()
) -> Iterator[RedisServer]:
    """Start redis-server with its files in ``folder``; ``aof`` turns on appendfsync always;
    ``security``: a password, ACL users, TLS."""
    if shutil.which("redis-server") is None:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    folder.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, PORT_CLASH_ATTEMPTS + 1):
        try:
            server = _start(folder, aof=aof, security=security)
            break
        except PortClash:
            if attempt == PORT_CLASH_ATTEMPTS:
                raise
    try:
        yield server
    finally:
        server.child.stop()
