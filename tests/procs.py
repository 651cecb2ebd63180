"""Run ``transporter`` as a real process, the way users do, and find where it listens."""

from __future__ import annotations

import contextlib
import re
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import attrs

PYTHON_TRANSPORTER = (sys.executable, "-m", "transporter")
_LISTENING = re.compile(r"API listening on (https?://\S+)")


@attrs.define
class Started:
    """A process started by :func:`started`."""

    popen: subprocess.Popen[str]
    lines: list[str]
    """Everything it wrote to stderr so far (a reader thread keeps appending)."""

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def stop(self, signum: int, timeout: float = 30.0) -> int:
        self.popen.send_signal(signum)
        return self.popen.wait(timeout)


@contextlib.contextmanager
def started(
    argv: Sequence[str],
    *patterns: re.Pattern[str],
    timeout: float = 120.0,
    stop_timeout: float = 15.0,
) -> Iterator[tuple[Started, list[str]]]:
    """Start a process and wait until its stderr has matched every pattern; yields it and the
    first group of each match. On the way out it is stopped (SIGTERM, then SIGKILL after
    ``stop_timeout`` seconds)."""
    popen = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    found: dict[int, str] = {}
    ready = threading.Event()

    def read() -> None:
        assert popen.stderr is not None
        for line in popen.stderr:
            lines.append(line)
            for index, pattern in enumerate(patterns):
                match = pattern.search(line)
                if match and index not in found:
                    found[index] = match.group(1)
            if len(found) == len(patterns):
                ready.set()
        ready.set()  # stderr closed: the process ended

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        ready.wait(timeout)
        if len(found) != len(patterns):
            code = popen.poll()
            state = f"exited with {code}" if code is not None else "did not get ready"
            raise RuntimeError(f"{' '.join(argv[:5])} {state}:\n{''.join(lines[-30:])}")
        yield Started(popen, lines), [found[i] for i in range(len(patterns))]
    finally:
        if popen.poll() is None:
            popen.terminate()
            try:
                popen.wait(stop_timeout)
            except subprocess.TimeoutExpired:
                popen.kill()
        popen.wait()
        reader.join(10)
        if popen.stderr is not None:
            popen.stderr.close()


@attrs.define
class RunningCp(Started):
    api_url: str = ""
    store_args: list[str] = attrs.field(factory=list)
    """The flags that name its store (``--data-dir DIR``, and ``--store URL`` when given)."""
    command: Sequence[str] = PYTHON_TRANSPORTER
    ca_file: Path | None = None
    """The CA of its API's certificate (``produce --ca-cert``)."""

    @property
    def api_context(self) -> ssl.SSLContext:
        """A client's TLS context that trusts this control plane's API certificate."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def new_token(self, name: str = "tests", role: str = "admin", *agents: str) -> str:
        """``transporter token create`` on this control plane's store: the token it printed."""
        return create_token(
            *self.store_args, name=name, role=role, agents=agents, command=self.command
        )


def create_token(
    *where: str,
    name: str = "tests",
    role: str = "admin",
    agents: Sequence[str] = (),
    command: Sequence[str] = PYTHON_TRANSPORTER,
) -> str:
    """``transporter token create`` with the store flags ``where``: the token it printed."""
    patterns = [arg for pattern in agents for arg in ("--agents", pattern)]
    done = subprocess.run(
        [*command, "token", "create", "--name", name, "--role", role, *patterns, *where],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"token create exited with {done.returncode}: {done.stderr}")
    return done.stdout.strip()


def create_bundle(
    data_dir: Path, agent_id: str, out: Path, *, command: Sequence[str] = PYTHON_TRANSPORTER
) -> Path:
    """``transporter bundle create`` from the CA and signing key in ``data_dir`` (a control
    plane's, after its first start): the folder it wrote, for ``transporter agent --bundle``."""
    flags = ["--agent-id", agent_id, "--out", str(out), "--data-dir", str(data_dir)]
    done = subprocess.run(
        [*command, "bundle", "create", *flags],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bundle create exited with {done.returncode}: {done.stderr}")
    return out


def store_args(data_dir: Path, extra: Sequence[str]) -> list[str]:
    """The flags of ``transporter cp``'s arguments ``--data-dir DIR *extra`` that name its
    store, for the commands that open it (``token``, ``audit verify``)."""
    where = ["--data-dir", str(data_dir)]
    for flag in ("--store", "--redis-addr"):
        if flag in extra:
            where += [flag, extra[list(extra).index(flag) + 1]]
    return where


@contextlib.contextmanager
def running_cp(
    data_dir: Path, *extra: str, command: Sequence[str] = PYTHON_TRANSPORTER
) -> Iterator[RunningCp]:
    """Start ``transporter cp`` on free ports and wait until its API says where it listens."""
    argv = [
        *command,
        "cp",
        "--listen",
        "127.0.0.1:0",
        "--agent-listen",
        "127.0.0.1:0",
        "--data-dir",
        str(data_dir),
        *extra,
    ]
    ca_file = Path(extra[list(extra).index("--ca-cert") + 1]) if "--ca-cert" in extra else None
    with started(argv, _LISTENING) as (process, (url,)):
        yield RunningCp(
            process.popen,
            process.lines,
            url,
            store_args(data_dir, extra),
            command,
            ca_file or data_dir / "ca.crt",
        )
