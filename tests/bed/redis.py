"""A real redis-server (the Debian package) on a free port, for the Redis store's tests."""

from __future__ import annotations

import contextlib
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import attrs

from tests.bed.process import Child, PortClash, free_port

START_TIMEOUT = 30.0
PORT_CLASH_ATTEMPTS = 3


@attrs.frozen
class RedisServer:
    host: str
    port: int
    folder: Path
    child: Child = attrs.field(repr=False)

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _start(folder: Path, *, aof: bool) -> RedisServer:
    port = free_port()
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
    child = Child(argv, folder / "redis.log")
    deadline = time.monotonic() + START_TIMEOUT
    while not _ping(port):
        child.check_alive()
        if time.monotonic() > deadline:
            child.stop()
            raise TimeoutError(f"redis-server not answering PING:\n{child.log_tail()}")
        time.sleep(0.02)
    return RedisServer("127.0.0.1", port, folder, child)


@contextlib.contextmanager
def running_redis(folder: Path, *, aof: bool = False) -> Iterator[RedisServer]:
    """Start redis-server with its files in ``folder``; ``aof`` turns on appendfsync always."""
    if shutil.which("redis-server") is None:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    folder.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, PORT_CLASH_ATTEMPTS + 1):
        try:
            server = _start(folder, aof=aof)
            break
        except PortClash:
            if attempt == PORT_CLASH_ATTEMPTS:
                raise
    try:
        yield server
    finally:
        server.child.stop()
