"""Shared pieces of the benchmarks: real processes on free ports, and figures."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.bed.process import Child, started
from tests.bed.roles import create_bundle, create_token, store_args

__all__ = [
    "TRANSPORTER",
    "Api",
    "Child",
    "agents_harness",
    "control_plane",
    "cpu_seconds",
    "create_bundle",
    "percentile",
    "rss_kib",
    "started",
    "wait_for_agents",
]

TRANSPORTER = (sys.executable, "-m", "transporter")

# The benchmarks wait for the roles' text log lines ("API listening on …", "registered with"):
# every process a benchmark starts logs text (json is the default when stderr is not a
# terminal), unless the caller chose otherwise.
os.environ.setdefault("TRANSPORTER_LOG_FORMAT", "text")
_API = re.compile(r"API listening on (https?://\S+)")
_AGENT = re.compile(r"agent channel listening on (wss?://\S+)")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


@contextlib.contextmanager
def control_plane(data_dir: Path, *extra: str) -> Iterator[tuple[Child, str, str, str]]:
    """A control plane on free ports: the process, its API and agent channel URLs, and an admin
    token made with ``transporter token create`` on its store (``extra``'s ``--store``)."""
    # BENCH_PROFILE_CP=FILE: run the control plane under pyinstrument (pip install pyinstrument)
    # and write its text profile to FILE.
    profile = os.environ.get("BENCH_PROFILE_CP")
    prefix = (
        [sys.executable, "-m", "pyinstrument", "-r", "text", "-o", profile, "-m", "transporter"]
        if profile
        else list(TRANSPORTER)
    )
    argv = [
        *prefix,
        "cp",
        "--listen",
        "127.0.0.1:0",
        "--agent-listen",
        "127.0.0.1:0",
        "--data-dir",
        str(data_dir),
        *extra,
    ]
    where = store_args(data_dir, extra)
    # A profiler writes its report on the way out, which takes a while.
    stop_timeout = 300 if profile else 15
    with started(argv, _API, _AGENT, stop_timeout=stop_timeout) as (process, (api, agent)):
        yield process, api, agent, create_token(*where, name="bench", role="admin")


class Api:
    """A keep-alive HTTP/1.1 client of the control plane (the benchmark's own load), with
    ``token`` as its bearer token, trusting the CA in the control plane's ``data_dir``."""

    def __init__(self, base_url: str, token: str, data_dir: Path) -> None:
        parts = urlsplit(base_url)
        if parts.scheme == "https":
            context = ssl.create_default_context(cafile=str(data_dir / "ca.crt"))
            self.connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                parts.hostname or "", parts.port, timeout=60, context=context
            )
        else:
            self.connection = http.client.HTTPConnection(
                parts.hostname or "", parts.port, timeout=60
            )
        self.headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body)
        self.connection.request(method, path, body=data, headers=self.headers)
        answer = self.connection.getresponse()
        return answer.status, json.loads(answer.read())

    def close(self) -> None:
        self.connection.close()


@contextlib.contextmanager
def agents_harness(
    agent_url: str, cp_data_dir: Path, agents: int, *, expect: int = 0
) -> Iterator[subprocess.Popen[str]]:
    """``agents`` agents of bench/agents.py in another process, every one registered when this
    yields (``expect``: they print ``received N in S s`` once they have that many events)."""
    argv = [
        sys.executable,
        str(Path(__file__).with_name("agents.py")),
        "--cp-url",
        agent_url,
        "--cp-data-dir",
        str(cp_data_dir),
        "--agents",
        str(agents),
        "--expect",
        str(expect),
    ]
    popen = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert popen.stdout is not None
        line = popen.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"the agents did not all connect: {line!r}")
        yield popen
    finally:
        popen.terminate()
        popen.wait(30)
        if popen.stdout is not None:
            popen.stdout.close()


def wait_for_agents(api: Api, count: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        _, body = api.call("GET", "/agents")
        if sum(1 for a in body["items"] if a["status"] == "connected") >= count:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {count} agents connected")
        time.sleep(0.1)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]
