"""Child processes of the test bed and of the tests: started so that they die with us, their
output read line by line so that a test waits for a line instead of sleeping, stopped for sure.

:class:`Child` is the one way tests, the bed and the benchmarks start a program: etcd,
kube-apiserver and redis-server (:mod:`tests.bed.kube`, :mod:`tests.bed.redis`), and
``transporter`` itself (:mod:`tests.bed.roles`).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1
START_TIMEOUT = 120.0
"""Seconds a program has to say it is ready (a cold, loaded 2-core machine needs a few)."""


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
    """A running program. Its output (stdout and stderr, in one stream) is read by a thread:
    kept in :attr:`lines` and copied to ``log`` when given. It dies with the test run
    (PDEATHSIG), also when the run is killed with -9.

    ``env`` is its whole environment (default: this process's)."""

    def __init__(
        self,
        argv: Sequence[str],
        log: Path | None = None,
        *,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.argv = list(argv)
        self.log = log
        self.lines: list[str] = []
        """Everything it wrote so far (the reader thread keeps appending)."""
        self._changed = threading.Condition()
        self._ended = False
        self.popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env=None if env is None else dict(env),
            preexec_fn=die_with_parent,
        )
        self._reader = threading.Thread(target=self._read, name=f"{self.name} output", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        with contextlib.ExitStack() as stack:
            out = stack.enter_context(self.log.open("a")) if self.log is not None else None
            if out is not None:
                out.write(f"--- pid {self.pid}: {' '.join(self.argv[:5])}\n")
            for line in self.popen.stdout:
                if out is not None:
                    out.write(line)
                    out.flush()
                with self._changed:
                    self.lines.append(line)
                    self._changed.notify_all()
        self.popen.stdout.close()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    @property
    def name(self) -> str:
        return Path(self.argv[0]).name

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def output(self) -> str:
        """Everything it wrote so far."""
        with self._changed:
            return "".join(self.lines)

    def tail(self, count: int = 30) -> str:
        with self._changed:
            return "".join(self.lines[-count:])

    def alive(self) -> bool:
        return self.popen.poll() is None

    def check_alive(self) -> None:
        """Raise with the end of its output when the program has exited."""
        if self.alive():
            return
        self._reader.join(10)  # the last lines it wrote
        tail = self.tail()
        if "address already in use" in tail.lower():
            raise PortClash(f"{self.name}: port taken by another process:\n{tail}")
        raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{tail}")

    def wait_for(
        self, pattern: re.Pattern[str], *, start: int = 0, timeout: float = START_TIMEOUT
    ) -> re.Match[str]:
        """The first line from ``lines[start]`` on that matches; raises when the program ends
        (its output closed) or ``timeout`` passes first."""
        deadline = time.monotonic() + timeout
        seen = start
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    match = pattern.search(line)
                    if match:
                        return match
                seen = max(seen, len(self.lines))
                left = deadline - time.monotonic()
                if self._ended or left <= 0:
                    state = "ended" if self._ended else f"no match within {timeout:.0f} s"
                    raise RuntimeError(
                        f"{' '.join(self.argv[:5])} (pid {self.pid}): {state} for"
                        f" {pattern.pattern!r}:\n{''.join(self.lines[-30:])}"
                    )
                self._changed.wait(left)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """``signum`` (SIGTERM: a clean stop), SIGKILL if it takes longer than ``timeout``
        seconds; its exit code."""
        if self.alive():
            self.popen.send_signal(signal.SIGCONT)  # if stopped, so that it can stop cleanly
            self.popen.send_signal(signum)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout)
        return self.kill()

    def kill(self) -> int:
        """kill -9 (for the fault tests), and reap it: its exit code."""
        if self.alive():
            self.popen.kill()
        code = self.popen.wait()
        self._reader.join(10)
        return code


@contextlib.contextmanager
def started(
    argv: Sequence[str],
    *patterns: re.Pattern[str],
    log: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = START_TIMEOUT,
    stop_timeout: float = 15.0,
) -> Iterator[tuple[Child, list[str]]]:
    """Start a program and wait until its output has matched every pattern; yields it and the
    first group of each match. On the way out it is stopped (SIGTERM, then SIGKILL after
    ``stop_timeout`` seconds)."""
    child = Child(argv, log, env=env)
    try:
        deadline = time.monotonic() + timeout
        found = [
            child.wait_for(pattern, timeout=max(0.0, deadline - time.monotonic())).group(1)
            for pattern in patterns
        ]
        yield child, found
    finally:
        child.stop(timeout=stop_timeout)
