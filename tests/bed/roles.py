"""``transporter cp`` and ``transporter agent`` as real processes that can be killed with -9 and
started again: the control plane on the ports it bound the first time, the agent with its id.

They run with the secure defaults: the API takes an admin token made on the control plane's
store, and each agent dials the agent channel over wss:// with a bundle (client certificate)
issued by the control plane's CA, which it makes at its first start in its data folder and
keeps across restarts."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from tests.bed.process import die_with_parent
from tests.bed.producer import ApiAccess
from tests.procs import create_bundle, create_token

TRANSPORTER = (sys.executable, "-m", "transporter")
API_LISTENING = re.compile(r"API listening on (https?://\S+)")
AGENT_LISTENING = re.compile(r"agent channel listening on (wss?://\S+)")
REGISTERED = re.compile(r"(registered) with")
"""The agent's line when its first connection to the control plane is up."""
DIAL_FAILED = re.compile(r"(reconnecting) with backoff")
"""The agent's line when a connection failed, or could not be made (once per outage)."""
START_TIMEOUT = 60.0
"""Seconds for a role process to say it is ready (a loaded 2-core machine needs a few)."""


def _environment() -> dict[str, str]:
    """This process's environment without ``TRANSPORTER_*`` variables: the processes run with
    the flags given here only (a ``TRANSPORTER_INSECURE_NO_AUTH`` of the caller's shell would
    turn the security these tests run with off)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("TRANSPORTER_")}


class Watched:
    """A running process whose stderr is read line by line: copied to ``log`` and kept, so that
    a test can wait for a line instead of sleeping. It dies with the test run (PDEATHSIG)."""

    def __init__(self, argv: Sequence[str], log: Path) -> None:
        self.argv = list(argv)
        self.log = log
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._ended = False
        self.popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=_environment(),
            preexec_fn=die_with_parent,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stderr is not None
        with self.log.open("a") as out:
            out.write(f"--- pid {self.popen.pid}: {' '.join(self.argv[2:5])}\n")
            for line in self.popen.stderr:
                out.write(line)
                out.flush()
                with self._changed:
                    self.lines.append(line)
                    self._changed.notify_all()
        self.popen.stderr.close()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, count: int = 30) -> str:
        with self._changed:
            return "".join(self.lines[-count:])

    def wait_for(
        self, pattern: re.Pattern[str], *, start: int = 0, timeout: float = START_TIMEOUT
    ) -> re.Match[str]:
        """The first line from ``lines[start]`` on that matches; raises when the process ends
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
                        f"{' '.join(self.argv[2:4])} (pid {self.pid}): {state} for"
                        f" {pattern.pattern!r}:\n{''.join(self.lines[-30:])}"
                    )
                self._changed.wait(left)

    def kill(self) -> None:
        """kill -9, and reap it."""
        if self.alive():
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait()
        self._reader.join(10)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (the roles' clean stop), SIGKILL if that takes longer than ``timeout``."""
        if self.alive():
            self.popen.send_signal(signal.SIGCONT)  # if stopped, so that it can stop cleanly
            self.popen.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout)
        self.kill()


class ControlPlaneProcess:
    """``transporter cp``. The first start binds free ports; every later start binds the same
    ones (the agent keeps dialling its one URL, the producer its one API URL), and finds in
    ``data_dir`` the CA its first start made (the agents' bundles stay valid)."""

    def __init__(self, data_dir: Path, log: Path, *, store: str | None = None) -> None:
        self.data_dir = data_dir
        self.store = store
        self.log = log
        self.api_port = 0
        self.agent_port = 0
        self.agent_scheme = "wss"
        self.process: Watched | None = None
        self.starts = 0
        self._token: str | None = None

    @property
    def api(self) -> ApiAccess:
        """The API with the admin token of :meth:`create_admin_token`."""
        assert self._token is not None, "create_admin_token() first"
        return ApiAccess(self.api_url, self._token, self.data_dir / "ca.crt")

    @property
    def api_url(self) -> str:
        assert self.api_port, "start() first"
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def agent_url(self) -> str:
        assert self.agent_port, "start() first"
        return f"{self.agent_scheme}://127.0.0.1:{self.agent_port}/ws"

    @property
    def store_flags(self) -> list[str]:
        return ["--data-dir", str(self.data_dir), *(["--store", self.store] if self.store else [])]

    def spawn(self) -> Watched:
        """Start the process; :meth:`ready` waits until it serves."""
        assert self.process is None or not self.process.alive(), "still running"
        argv = [
            *TRANSPORTER,
            "cp",
            "--listen",
            f"127.0.0.1:{self.api_port}",
            "--agent-listen",
            f"127.0.0.1:{self.agent_port}",
            *self.store_flags,
        ]
        self.process = Watched(argv, self.log)
        self.starts += 1
        return self.process

    def ready(self, timeout: float = START_TIMEOUT) -> None:
        """Until the API and the agent channel listen; learns their ports the first time."""
        assert self.process is not None
        agent = self.process.wait_for(AGENT_LISTENING, timeout=timeout).group(1)
        api = self.process.wait_for(API_LISTENING, timeout=timeout).group(1)
        api_port, agent_port = _port(api), _port(agent)
        if self.api_port:
            assert (api_port, agent_port) == (self.api_port, self.agent_port)
        self.api_port, self.agent_port = api_port, agent_port
        self.agent_scheme = agent.split(":", 1)[0]

    def start(self) -> None:
        self.spawn()
        self.ready()

    def create_admin_token(self) -> ApiAccess:
        """``transporter token create --role admin`` on its store, once it has started (the
        store is set up): :attr:`api` from then on. The token lives in the store, and outlives
        the process's restarts."""
        assert self.api_port, "start() first"
        self._token = create_token(*self.store_flags, name="fault-tests", role="admin")
        return self.api

    def create_bundle(self, agent_id: str, out: Path) -> Path:
        """``transporter bundle create`` for ``agent_id`` from the CA in ``data_dir`` (made at
        the first start): the new folder ``out``, for :class:`AgentProcess`."""
        assert self.api_port, "start() first"
        return create_bundle(self.data_dir, agent_id, out)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def verify_audit(self) -> tuple[bool, str]:
        """``transporter audit verify`` of its store: whether the hash chain is intact, and
        what the command said."""
        done = subprocess.run(
            [*TRANSPORTER, "audit", "verify", *self.store_flags],
            env=_environment(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        return done.returncode == 0, (done.stdout + done.stderr).strip()


class AgentProcess:
    """``transporter agent`` on a cluster; started again, it is the same agent (its id, and the
    bundle of that id from :meth:`ControlPlaneProcess.create_bundle`)."""

    def __init__(
        self, agent_id: str, cp_url: str, bundle: Path, kubeconfig: Path, log: Path
    ) -> None:
        self.argv = [
            *TRANSPORTER,
            "agent",
            "--agent-id",
            agent_id,
            "--bundle",
            str(bundle),
            "--cp-url",
            cp_url,
            "--kubeconfig",
            str(kubeconfig),
        ]
        self.log = log
        self.process: Watched | None = None

    def spawn(self) -> Watched:
        self.process = Watched(self.argv, self.log)
        return self.process

    def start(self) -> None:
        """Start it and wait until it has registered with the control plane."""
        self.spawn().wait_for(REGISTERED)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()

    def pause(self) -> None:
        """SIGSTOP: the agent hangs, silent, its connections open."""
        assert self.process is not None
        self.process.popen.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.popen.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])
