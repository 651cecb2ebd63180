"""Redis as operators run it for no loss: a primary, two replicas and three Sentinels (quorum 2),
each a real redis-server on a free port with its files in a folder of its own.

The data servers run with the settings the README gives (``appendonly yes``, ``appendfsync
always``, ``min-replicas-to-write 1``, ``min-replicas-max-lag 10``); the Sentinels notice a dead
primary after :data:`DOWN_AFTER_MS` (small, so that a failover test stays short). Readiness and
failovers are waited for by asking the servers (INFO, SENTINEL) until they say so, with a
deadline.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import socket
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from urllib.parse import quote

import attrs

from tests.bed.certs import ClusterCerts, make_cluster_certs
from tests.bed.process import Child, free_port

SERVICE = "transporter"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000
READY_TIMEOUT = 60.0
POLL = 0.02
"""Seconds between two questions to a server that is not there yet."""
FAILOVER_WAIT = 60.0
"""Seconds a failover may take in the tests: the down-after time, an election, a promotion and
the other replica's sync, on a loaded 2-core machine."""


DATA_SETTINGS = (
    ("appendonly", "yes"),
    ("appendfsync", "always"),
    ("min-replicas-to-write", "1"),
    ("min-replicas-max-lag", "10"),
    ("repl-diskless-sync", "yes"),
    ("repl-diskless-sync-delay", "0"),
)
"""What every data server runs with (the README's list, and a replica sync that starts at once)."""


@attrs.frozen
class Logins:
    servers: str | None = attrs.field(default=None, repr=False)
    """The data servers' ``requirepass`` (and ``masterauth``, Sentinel's ``auth-pass``)."""
    sentinels: str | None = attrs.field(default=None, repr=False)
    """The Sentinels' own ``requirepass``."""


@attrs.define(eq=False)
class Node:
    port: int
    folder: Path
    child: Child = attrs.field(repr=False)
    password: str | None = attrs.field(default=None, repr=False)
    certs: ClusterCerts | None = None
    """With TLS: the bed's CA, and the client certificate the bed logs in with."""

    def command(self, *args: str) -> object:
        return command(self.port, *args, password=self.password, certs=self.certs)


@attrs.define(eq=False)
class SentinelBed:
    servers: list[Node]
    """The data servers: the first one was the primary at the start."""
    sentinels: list[Node]

    def url(self, query: str = "") -> str:
        """The store URL, with the passwords and the TLS files when the bed has them."""
        hosts = ",".join(f"127.0.0.1:{node.port}" for node in self.sentinels)
        certs, scheme = self.sentinels[0].certs, "redis+sentinel"
        if certs is not None:
            files = {"ssl_ca_certs": certs.ca_cert, "ssl_certfile": certs.admin_cert}
            files |= {"ssl_keyfile": certs.admin_key}
            tls = "&".join(f"{name}={quote(str(path))}" for name, path in files.items())
            query, scheme = "&".join(filter(None, [tls, query])), "rediss+sentinel"
        auth = f":{quote(self.servers[0].password, safe='')}@" if self.servers[0].password else ""
        if self.sentinels[0].password:
            secret = quote(self.sentinels[0].password, safe="")
            query = "&".join(filter(None, [f"sentinel_password={secret}", query]))
        return f"{scheme}://{auth}{hosts}/{SERVICE}" + (f"?{query}" if query else "")

    def primary(self) -> Node:
        """The data server the Sentinels name as the primary now."""
        port = _named_primary(self.sentinels[0])
        return next(node for node in self.servers if node.port == port)

    def replicas(self) -> list[Node]:
        """The data servers the Sentinels do not name as the primary now."""
        primary = self.primary()
        return [node for node in self.servers if node is not primary]

    def cut_link(self, replica: Node) -> None:
        """Cut ``replica``'s link to its primary for good, as a wrong ``masterauth`` would
        (the Sentinels still see it up, and do not repair it): it logs in as a user that does
        not exist, and its link is closed."""
        assert replica.command("CONFIG", "SET", "masteruser", "nobody") == "OK"
        assert replica.command("CONFIG", "SET", "masterauth", "wrong") == "OK"
        replica.command("CLIENT", "KILL", "TYPE", "master")

    def kill_primary(self) -> Node:
        """kill -9 of the primary; it stays dead."""
        primary = self.primary()
        primary.child.kill()
        return primary

    def failover(self) -> None:
        """``SENTINEL FAILOVER``: a replica promoted and the old primary made a replica of it."""
        assert self.sentinels[0].command("SENTINEL", "failover", SERVICE) == "OK"

    def stall_failover(self) -> Node:
        """``SENTINEL FAILOVER`` held at its promotion: the replica the leading Sentinel (the
        first) is made to pick is stopped (SIGSTOP) just before, so its ``REPLICAOF NO ONE``
        waits unread while the old primary takes writes and the other replica confirms them
        (until :meth:`resume`, or until the failover timeout aborts it). The stopped replica."""
        leader, promoted = self.sentinels[0], self.replicas()[0]
        assert leader.command("SENTINEL", "DEBUG", "info-period", "100") == "OK"
        assert promoted.command("CONFIG", "SET", "replica-priority", "1") == "OK"
        until(lambda: _priority(leader, promoted.port) == "1", "the new priority", READY_TIMEOUT)
        os.kill(promoted.child.popen.pid, signal.SIGSTOP)
        self.failover()
        return promoted

    def resume(self, node: Node) -> None:
        os.kill(node.child.popen.pid, signal.SIGCONT)

    def wait_switched(self, old: Node, *, replicas: int) -> Node:
        """Until every Sentinel names another primary than ``old`` and that one has ``replicas``
        replicas online (so it takes writes again): the new primary."""
        for sentinel in self.sentinels:
            until(
                functools.partial(_names_another, sentinel, old.port),
                f"Sentinel {sentinel.port} to switch from {old.port}",
                FAILOVER_WAIT,
            )
        primary = self.primary()
        assert primary is not old
        until(
            lambda: _online(primary) >= replicas,
            f"{replicas} replica(s) online on the new primary {primary.port}",
            FAILOVER_WAIT,
        )
        return primary


def command(
    port: int, *args: str, password: str | None = None, certs: ClusterCerts | None = None
) -> object:
    """One command to the server on ``port`` (over TLS with ``certs``, logged in first with
    ``password``), its reply decoded (RESP2)."""
    with contextlib.ExitStack() as stack:
        sock = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=10))
        if certs is not None:
            context = ssl.create_default_context(cafile=str(certs.ca_cert))
            context.load_cert_chain(str(certs.admin_cert), str(certs.admin_key))
            sock = stack.enter_context(context.wrap_socket(sock, server_hostname="127.0.0.1"))
        replies = sock.makefile("rb")
        if password is not None:
            sock.sendall(_request("AUTH", password))
            _reply(replies)
        sock.sendall(_request(*args))
        return _reply(replies)


def _request(*args: str) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(
        b"$%d\r\n%s\r\n" % (len(arg.encode()), arg.encode()) for arg in args
    )


def _reply(stream: object) -> object:
    assert hasattr(stream, "readline") and hasattr(stream, "read")
    line = stream.readline().rstrip(b"\r\n")
    kind, rest = line[:1], line[1:].decode()
    if kind == b"+":
        return rest
    if kind == b"-":
        raise RuntimeError(f"Redis: {rest}")
    if kind == b":":
        return int(rest)
    if kind == b"$":
        return None if rest == "-1" else stream.read(int(rest) + 2)[:-2].decode()
    if kind == b"*":
        return None if rest == "-1" else [_reply(stream) for _ in range(int(rest))]
    raise RuntimeError(f"Redis: unexpected reply {line!r}")


def info(node: Node, section: str) -> dict[str, str]:
    text = node.command("INFO", section)
    assert isinstance(text, str)
    return dict(
        line.split(":", 1) for line in text.splitlines() if ":" in line and not line.startswith("#")
    )


def until(
    check: Callable[[], bool], what: str, timeout: float, *, alive: Sequence[Node] = ()
) -> None:
    """Ask ``check`` until it holds (a server answers only when asked), or fail after
    ``timeout`` seconds naming ``what`` was awaited, or at once when one of ``alive`` ended."""
    deadline = time.monotonic() + timeout
    while not _holds(check):
        for node in alive:
            node.child.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}")
        time.sleep(POLL)


def _holds(check: Callable[[], bool]) -> bool:
    try:
        return check()
    except (OSError, RuntimeError):  # not listening yet, or -LOADING
        return False


def _online(primary: Node) -> int:
    """How many replicas ``primary`` has online, 0 unless it is a primary."""
    found = info(primary, "replication")
    if found.get("role") != "master":
        return 0
    return sum(1 for k, v in found.items() if k.startswith("slave") and "state=online" in v)


def _named_primary(sentinel: Node) -> int:
    reply = sentinel.command("SENTINEL", "get-master-addr-by-name", SERVICE)
    assert isinstance(reply, list), reply
    return int(reply[1])


def _priority(sentinel: Node, port: int) -> str | None:
    """The ``slave-priority`` ``sentinel`` knows of the replica at ``port``."""
    reply = sentinel.command("SENTINEL", "replicas", SERVICE)
    assert isinstance(reply, list), reply
    for each in reply:
        fields = dict(zip(each[::2], each[1::2], strict=True))
        if fields.get("port") == str(port):
            return fields.get("slave-priority")
    return None


def _names_another(sentinel: Node, old: int) -> bool:
    return _named_primary(sentinel) != old


def _knows_all(sentinel: Node) -> bool:
    reply = sentinel.command("SENTINEL", "master", SERVICE)
    assert isinstance(reply, list), reply
    fields = dict(zip(reply[::2], reply[1::2], strict=True))
    return fields.get("num-slaves") == "2" and fields.get("num-other-sentinels") == "2"


def _tls_settings(port: int, certs: ClusterCerts | None) -> list[tuple[str, str]]:
    """TLS only on ``port``, for clients and for replication alike; a server's own outgoing
    connections (a replica's to its primary, a Sentinel's) show the client certificate."""
    if certs is None:
        return [("port", str(port))]
    return [
        ("port", "0"),
        ("tls-port", str(port)),
        ("tls-cert-file", str(certs.serving_cert)),
        ("tls-key-file", str(certs.serving_key)),
        ("tls-client-cert-file", str(certs.admin_cert)),
        ("tls-client-key-file", str(certs.admin_key)),
        ("tls-ca-cert-file", str(certs.ca_cert)),
        ("tls-auth-clients", "yes"),
        ("tls-replication", "yes"),
    ]


def _data_server(
    folder: Path, port: int, primary: int | None, password: str | None, certs: ClusterCerts | None
) -> Child:
    folder.mkdir(parents=True)
    argv = [shutil.which("redis-server") or "redis-server"]
    for name, value in _tls_settings(port, certs):
        argv += [f"--{name}", value]
    argv += ["--bind", "127.0.0.1", "--dir", str(folder), "--save", "", "--daemonize", "no"]
    for name, value in DATA_SETTINGS:
        argv += [f"--{name}", value]
    if primary is not None:
        argv += ["--replicaof", "127.0.0.1", str(primary)]
    if password is not None:
        argv += ["--requirepass", password, "--masterauth", password]
    return Child(argv, folder / "redis.log")


def _sentinel(
    folder: Path, port: int, primary: int, logins: Logins, certs: ClusterCerts | None
) -> Child:
    folder.mkdir(parents=True)
    conf = folder / "sentinel.conf"  # Sentinel rewrites it: what it learns survives a restart
    conf.write_text(
        "".join(f"{name} {value}\n" for name, value in _tls_settings(port, certs))
        + f"bind 127.0.0.1\ndir {folder}\n"
        f"sentinel monitor {SERVICE} 127.0.0.1 {primary} 2\n"
        f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
        f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}\n"
        f"sentinel parallel-syncs {SERVICE} 2\n"
    )
    with conf.open("a") as out:
        if logins.servers is not None:
            out.write(f"sentinel auth-pass {SERVICE} {_quoted(logins.servers)}\n")
        if logins.sentinels is not None:  # also what it logs in to the other Sentinels with
            out.write(f"requirepass {_quoted(logins.sentinels)}\n")
    argv = [shutil.which("redis-server") or "redis-server", str(conf), "--sentinel"]
    return Child(argv, folder / "sentinel.log")


def _quoted(text: str) -> str:
    """``text`` as redis.conf reads a quoted string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@contextlib.contextmanager
def running_sentinels(
    folder: Path, logins: Logins | None = None, *, tls: bool = False
) -> Iterator[SentinelBed]:
    """A primary, two replicas in sync and three Sentinels that know them all and each other;
    ``logins``: passwords for the data servers and for the Sentinels; ``tls``: TLS only, client
    certificates required, from the test bed's own CA."""
    logins = logins or Logins()
    certs = make_cluster_certs(folder / "tls") if tls else None
    if shutil.which("redis-server") is None:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    nodes: list[Node] = []
    try:
        primary: int | None = None
        for n in range(3):
            port = free_port()
            where = folder / f"data-{n}"
            child = _data_server(where, port, primary, logins.servers, certs)
            nodes.append(Node(port, where, child, logins.servers, certs))
            primary = primary or port
        until(lambda: _online(nodes[0]) == 2, "two replicas in sync", READY_TIMEOUT, alive=nodes)
        sentinels = []
        for n in range(3):
            port = free_port()
            where = folder / f"sentinel-{n}"
            child = _sentinel(where, port, nodes[0].port, logins, certs)
            sentinels.append(Node(port, where, child, logins.sentinels, certs))
            nodes.append(sentinels[-1])
        for sentinel in sentinels:
            until(
                functools.partial(_knows_all, sentinel),
                f"Sentinel {sentinel.port} to know both replicas and the other Sentinels",
                READY_TIMEOUT,
                alive=nodes,
            )
        yield SentinelBed(nodes[:3], sentinels)
    finally:
        for node in reversed(nodes):
            node.child.stop()
