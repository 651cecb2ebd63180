"""Keep-alive connections to one API server, shared by the worker threads of its transport.

At most ``max_idle`` connections wait between requests (the rest are closed as they come
back); a request takes the one used last. Before it is reused, a connection the server has
closed meanwhile is seen and dropped (as urllib3 does): an idle connection has nothing to
read, so a readable one was closed or reset, or is out of step.
"""

from __future__ import annotations

import select
import threading
from collections.abc import Callable

from transporter.kube.connection import Connection


class Pool:
    def __init__(self, make: Callable[[], Connection], *, max_idle: int) -> None:
        self._make = make
        self._max_idle = max_idle
        self._lock = threading.Lock()
        self._idle: list[Connection] = []
        self._closed = False

    def take(self) -> tuple[Connection, bool]:
        """A connection, and whether it is a kept one (else: new, not yet connected)."""
        while True:
            with self._lock:
                kept = self._idle.pop() if self._idle else None
            if kept is None:
                return self.new(), False
            if not _dropped(kept):
                return kept, True
            kept.close()

    def new(self) -> Connection:
        return self._make()

    def give_back(self, connection: Connection) -> None:
        """Keep ``connection`` for the next request, unless enough are kept or it is closed."""
        with self._lock:
            if not self._closed and connection.sock and len(self._idle) < self._max_idle:
                self._idle.append(connection)
                return
        connection.close()

    def close(self) -> None:
        """Close the idle connections; the others are closed when they come back."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


def _dropped(connection: Connection) -> bool:
    sock = connection.sock
    if not sock:
        return True
    pending = getattr(sock, "pending", None)  # TLS: bytes already decrypted
    if pending is not None and pending():
        return True
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):  # a closed socket: fileno() -1
        return True
