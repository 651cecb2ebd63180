"""Run ``transporter`` as a real process, the way users do, and find where it listens."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import attrs

PYTHON_TRANSPORTER = (sys.executable, "-m", "transporter")
_LISTENING = re.compile(r"API listening on (http://\S+)")


@attrs.define
class RunningCp:
    popen: subprocess.Popen[str]
    api_url: str
    lines: list[str]
    """Everything it wrote to stderr so far (a reader thread keeps appending)."""

    def stop(self, signum: int, timeout: float = 30.0) -> int:
        self.popen.send_signal(signum)
        return self.popen.wait(timeout)

    @property
    def output(self) -> str:
        return "".join(self.lines)


@contextlib.contextmanager
def running_cp(
    data_dir: Path, *extra: str, command: Sequence[str] = PYTHON_TRANSPORTER
) -> Iterator[RunningCp]:
    """Start ``transporter cp`` on free ports and wait until its API says where it listens."""
    popen = subprocess.Popen(
        [
            *command,
            "cp",
            "--listen",
            "127.0.0.1:0",
            "--agent-listen",
            "127.0.0.1:0",
            "--data-dir",
            str(data_dir),
            *extra,
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    found = threading.Event()
    url: list[str] = []

    def read() -> None:
        assert popen.stderr is not None
        for line in popen.stderr:
            lines.append(line)
            match = _LISTENING.search(line)
            if match and not url:
                url.append(match.group(1))
                found.set()
        found.set()  # stderr closed: the process ended

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        found.wait()
        if not url:
            popen.wait(10)
            raise RuntimeError(f"cp exited with {popen.returncode}:\n{''.join(lines)}")
        yield RunningCp(popen, url[0], lines)
    finally:
        if popen.poll() is None:
            popen.kill()
        popen.wait()
        reader.join(10)
        assert popen.stderr is not None
        popen.stderr.close()
