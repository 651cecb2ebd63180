"""Child processes of the test bed: started so that they die with us, stopped for sure."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import socket
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # If the test run is killed (even with -9), the kernel kills the children too: nothing of
    # the bed is left running.
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def free_port() -> int:
    """A port that was free a moment ago. Servers we start report a clash, see ``PortClash``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PortClash(RuntimeError):
    """Another process took the port between ``free_port()`` and the server's bind."""


class Child:
    """A running program whose output goes to ``log``."""

    def __init__(
        self, argv: Sequence[str], log: Path, *, env: Mapping[str, str] | None = None
    ) -> None:
        self.argv = list(argv)
        self.log = log
        with log.open("ab") as out:
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                preexec_fn=die_with_parent,
            )

    @property
    def name(self) -> str:
        return Path(self.argv[0]).name

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        """Raise with the end of the log when the program has exited."""
        if self.alive():
            return
        tail = self.log_tail()
        if "address already in use" in tail.lower():
            raise PortClash(f"{self.name}: port taken by another process:\n{tail}")
        raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{tail}")

    def stop(self, timeout: float = 10.0) -> None:
        if not self.alive():
            return
        self.popen.terminate()
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()

    def kill(self) -> None:
        """kill -9, for the fault tests."""
        if self.alive():
            self.popen.kill()
        self.popen.wait()
