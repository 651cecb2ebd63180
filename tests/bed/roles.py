"""``transporter`` run as users run it, as real processes (:class:`tests.bed.process.Child`).

- :func:`running_cp`: a control plane on free ports for the length of a ``with`` block, and
  the commands run on its host: :func:`create_token`, :func:`create_bundle`.
- :class:`ControlPlaneProcess` and :class:`AgentProcess`: roles that can be killed with -9 and
  started again, the control plane on the ports it bound the first time, the agent with its id
  (the fault tests, ``bench/crash.py``).

They run with the secure defaults: the API takes an admin token made on the control plane's
store, and each agent dials the agent channel over wss:// with a bundle (client certificate)
issued by the control plane's CA, which it makes at its first start in its data folder and
keeps across restarts. They run with the flags given here only: :func:`clean_environment`.
"""

from __future__ import annotations

import os
import re
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import attrs

from tests.bed.process import Child, started
from tests.bed.producer import ApiAccess

PYTHON_TRANSPORTER = (sys.executable, "-m", "transporter")
SINGLE_FILE = Path(__file__).resolve().parents[2] / "dist" / "transporter"
"""The single-file build of ``make binary``."""
API_LISTENING = re.compile(r"API listening on (https?://\S+)")
AGENT_LISTENING = re.compile(r"agent channel listening on (wss?://\S+)")
REGISTERED = re.compile(r"(registered) with")
"""The agent's line when its first connection to the control plane is up."""
DIAL_FAILED = re.compile(r"(reconnecting) with backoff")
"""The agent's line when a connection failed, or could not be made (once per outage)."""
START_TIMEOUT = 60.0
"""Seconds for a role process to say it is ready (a loaded 2-core machine needs a few)."""


def clean_environment() -> dict[str, str]:
    """This process's environment without ``TRANSPORTER_*`` variables: the processes run with
    the flags given here only (a ``TRANSPORTER_INSECURE_NO_AUTH`` of the caller's shell would
    turn the security these tests run with off). Their logs are text, which the tests read
    (json is the default when stderr is not a terminal; tests/test_logs.py checks it)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TRANSPORTER_")}
    return clean | {"TRANSPORTER_LOG_FORMAT": "text"}


def transporter(
    *argv: str, env: Mapping[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``transporter *argv`` of this checkout, as a user runs it: its exit code and output
    (text). ``env`` replaces the environment when given."""
    return subprocess.run(
        [*PYTHON_TRANSPORTER, *argv],
        capture_output=True,
        text=True,
        env=None if env is None else dict(env),
        timeout=timeout,
        check=False,
    )


@attrs.define
class RunningCp:
    """A control plane started by :func:`running_cp`."""

    process: Child
    api_url: str
    store_args: list[str]
    """The flags that name its store (``--data-dir DIR``, and ``--store URL`` when given)."""
    command: Sequence[str] = PYTHON_TRANSPORTER
    ca_file: Path | None = None
    """The CA of its API's certificate (``produce --ca-cert``)."""

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def lines(self) -> list[str]:
        return self.process.lines

    @property
    def output(self) -> str:
        """Everything it logged so far."""
        return self.process.output

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """``signum``, SIGKILL after ``timeout`` seconds: its exit code."""
        return self.process.stop(signum, timeout)

    @property
    def api_context(self) -> ssl.SSLContext:
        """A client's TLS context that trusts this control plane's API certificate."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def new_token(self, name: str = "tests", role: str = "admin", *agents: str) -> str:
        """``transporter token create`` on this control plane's store: the token it printed."""
        return create_token(
            *self.store_args, name=name, role=role, agents=agents, command=self.command
        )

    def produce_and_wait(self, agent_id: str, manifest: Path) -> subprocess.CompletedProcess[str]:
        """``transporter produce k8s --wait -o json`` of ``manifest`` for ``agent_id``, by the
        same command as this control plane (the single file, say), with a new admin token."""
        flags = ["--cp-url", self.api_url, "--ca-cert", str(self.ca_file), "--agent", agent_id]
        flags += ["--manifest", str(manifest), "--wait", "-o", "json"]
        return subprocess.run(
            [*self.command, "produce", "k8s", *flags],
            capture_output=True,
            text=True,
            env={"TRANSPORTER_TOKEN": self.new_token()},
            timeout=120,
            check=False,
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
        env=clean_environment(),
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
        env=clean_environment(),
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


@contextmanager
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
    with started(argv, API_LISTENING, env=clean_environment()) as (process, (url,)):
        yield RunningCp(
            process, url, store_args(data_dir, extra), command, ca_file or data_dir / "ca.crt"
        )


class ControlPlaneProcess:
    """``transporter cp``. The first start binds free ports; every later start binds the same
    ones (the agent keeps dialling its one URL, the producer its one API URL), and finds in
    ``data_dir`` the CA its first start made (the agents' bundles stay valid)."""

    def __init__(
        self, data_dir: Path, log: Path, *, store: str | None = None, flags: Sequence[str] = ()
    ) -> None:
        self.data_dir = data_dir
        self.store = store
        self.flags = list(flags)
        """More flags of ``transporter cp``."""
        self.log = log
        self.api_port = 0
        self.agent_port = 0
        self.agent_scheme = "wss"
        self.process: Child | None = None
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

    def spawn(self) -> Child:
        """Start the process; :meth:`ready` waits until it serves."""
        assert self.process is None or not self.process.alive(), "still running"
        argv = [
            *PYTHON_TRANSPORTER,
            "cp",
            "--listen",
            f"127.0.0.1:{self.api_port}",
            "--agent-listen",
            f"127.0.0.1:{self.agent_port}",
            *self.store_flags,
            *self.flags,
        ]
        self.process = Child(argv, self.log, env=clean_environment())
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
            [*PYTHON_TRANSPORTER, "audit", "verify", *self.store_flags],
            env=clean_environment(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        return done.returncode == 0, (done.stdout + done.stderr).strip()


def agent_argv(agent_id: str, cp_url: str, bundle: Path, kubeconfig: Path) -> list[str]:
    """``transporter agent`` of this checkout as ``agent_id``, with its bundle and cluster."""
    return [
        *PYTHON_TRANSPORTER,
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


class AgentProcess:
    """``transporter agent`` on a cluster; started again, it is the same agent (its id, and the
    bundle of that id from :meth:`ControlPlaneProcess.create_bundle`)."""

    def __init__(
        self, agent_id: str, cp_url: str, bundle: Path, kubeconfig: Path, log: Path
    ) -> None:
        self.argv = agent_argv(agent_id, cp_url, bundle, kubeconfig)
        self.log = log
        self.process: Child | None = None

    def spawn(self) -> Child:
        self.process = Child(self.argv, self.log, env=clean_environment())
        return self.process

    def start(self) -> None:
        """Start it and wait until it has registered with the control plane."""
        self.spawn().wait_for(REGISTERED, timeout=START_TIMEOUT)

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
