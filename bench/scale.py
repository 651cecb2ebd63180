"""Scale: many agents on one control plane over mutual TLS, and their return after a kill -9.

    .venv/bin/python bench/scale.py [--agents 10000] [--processes 8] [--rest 30]
                                    [--timeout 240] [--one-address] [--keep]

A control plane (embedded SQLite store) on ports chosen once, and ``--processes`` load
generators (bench/fleet.py, separate processes) holding ``--agents`` real agent sessions in all
(ids bench-0..N-1, a bundle each issued from the control plane's CA, the agent's own jittered
backoff). Loopback only; every agent dials from a loopback address of its own (127.x.y.z) unless
``--one-address``, since the control plane bounds handshakes per client address. Prints:

- the control plane's RSS before the agents and with all connected: KiB per connection;
- its CPU over ``--rest`` seconds with every agent connected and idle (heartbeats only);
- the time from the start until every agent is registered (the generators say when);
- after kill -9 and a restart on the same data folder and ports, the time until every agent is
  registered again (the reconnect storm).

Targets (issue 14), on this 2-core machine where the generators share the cores: <= 40 KiB per
connection, heartbeats at rest <= 10 % of a core, all back within 60 s of the restart. Every
phase is bounded by ``--timeout`` seconds; every process started here is stopped on the way out.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.bed.process import Child, free_port
from tests.bed.roles import create_token

from bench.common import TRANSPORTER, Api, cpu_seconds, rss_kib
from transporter.cp.trim import INTERVAL as TRIM_INTERVAL

API = re.compile(r"API listening on (https?://\S+)")
AGENT = re.compile(r"agent channel listening on (wss?://\S+)")
BUNDLES = re.compile(r"^bundles (\d+) ([\d.]+)")
PROGRESS = re.compile(r"^progress (\d+) (\d+) (\d+)")
SETTLE = 3.0
"""Seconds for allocations and heartbeats to settle before RSS or CPU is read."""
MAX_AGENTS = 50_000
MAX_PROCESSES = 64
FD_MARGIN = 256
"""Open files a process needs beside one per connection (listeners, store, logs, pipes)."""


def machine_cpu() -> float:
    """CPU seconds the whole machine has used so far, every process's (``/proc/stat``)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    busy = sum(int(f) for i, f in enumerate(fields[:8]) if i not in (3, 4))  # not idle, iowait
    return busy / os.sysconf("SC_CLK_TCK")


class Others:
    """CPU the rest of the machine used meanwhile (other work on a shared host skews every
    figure here: said beside them)."""

    def __init__(self, cp: ControlPlane, fleet: Generators) -> None:
        self.cp, self.fleet = cp, fleet
        self.began = time.monotonic()
        self.machine = machine_cpu()
        self.ours = cpu_seconds(cp.pid) + fleet.cpu()

    def said(self) -> str:
        took = time.monotonic() - self.began
        ours = cpu_seconds(self.cp.pid) + self.fleet.cpu() - self.ours
        others = max(0.0, machine_cpu() - self.machine - ours)
        return f"other processes {others / took:.0%} of a core, load {os.getloadavg()[0]:.1f}"


def round_line(k: int) -> re.Pattern[str]:
    return re.compile(rf"^round {k} (\d+) ([\d.]+)")


def open_files(needed: int) -> str:
    """Raise the soft limit of open files to the hard one (the children inherit it); what the
    limits are, or :class:`SystemExit` naming the limit that refuses."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        sys.exit(
            f"open files: the hard limit (ulimit -Hn) is {hard}, the control plane needs {needed}"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return f"open files: soft {soft} -> {hard} (hard {hard}); the control plane needs {needed}"


class ControlPlane:
    """``transporter cp`` on ports chosen once: a restart keeps its URLs and data folder."""

    def __init__(self, data_dir: Path, log: Path) -> None:
        self.data_dir = data_dir
        self.log = log
        self.argv = [
            *TRANSPORTER,
            "cp",
            "--listen",
            f"127.0.0.1:{free_port()}",
            "--agent-listen",
            f"127.0.0.1:{free_port()}",
            "--data-dir",
            str(data_dir),
        ]
        self.process: Child | None = None
        self.api_url = ""
        self.agent_url = ""

    def start(self, timeout: float) -> None:
        self.process = Child(self.argv, self.log)
        self.agent_url = self.process.wait_for(AGENT, timeout=timeout).group(1)
        self.api_url = self.process.wait_for(API, timeout=timeout).group(1)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


class Generators:
    """The load generators: bench/fleet.py processes, ``agents`` spread over ``processes``."""

    def __init__(
        self, cp: ControlPlane, agents: int, processes: int, work: Path, args: argparse.Namespace
    ) -> None:
        share, extra = divmod(agents, processes)
        self.children: list[Child] = []
        first = 0
        for p in range(processes):
            count = share + (1 if p < extra else 0)
            argv = [
                sys.executable,
                str(Path(__file__).with_name("fleet.py")),
                "--cp-url",
                cp.agent_url,
                "--cp-data-dir",
                str(cp.data_dir),
                "--first",
                str(first),
                "--count",
                str(count),
                *(["--one-address"] if args.one_address else []),
            ]
            self.children.append(Child(argv, work / f"fleet-{p}.log"))
            first += count

    def bundles(self, timeout: float) -> float:
        """Until every generator has its bundles: the longest it took."""
        deadline = time.monotonic() + timeout
        return max(
            float(c.wait_for(BUNDLES, timeout=deadline - time.monotonic()).group(2))
            for c in self.children
        )

    def start(self) -> float:
        """Tell every generator to connect its agents: when."""
        began = time.monotonic()
        for child in self.children:
            child.popen.send_signal(signal.SIGUSR1)
        return began

    def round(self, k: int, timeout: float) -> float:
        """When the last generator said that all its agents registered ``k`` times; raises
        :class:`TimeoutError` saying how many were connected then."""
        deadline = time.monotonic() + timeout
        times = []
        for child in self.children:
            left = deadline - time.monotonic()
            try:
                times.append(float(child.wait_for(round_line(k), timeout=max(left, 0)).group(2)))
            except RuntimeError:
                raise TimeoutError(f"round {k}: {self.progress(k)}") from None
        return max(times)

    def mark(self, k: int, timeout: float) -> None:
        """Have every generator note its agents' registrations (round ``k`` counts from now)."""
        deadline = time.monotonic() + timeout
        for child in self.children:
            child.popen.send_signal(signal.SIGUSR2)
        for child in self.children:
            child.wait_for(re.compile(rf"^marked {k}$"), timeout=deadline - time.monotonic())

    def progress(self, k: int) -> str:
        """The generators' last word on round ``k``: connected agents of all."""
        up = total = 0
        for child in self.children:
            said = [m for line in child.lines if (m := PROGRESS.match(line)) and m[1] == str(k)]
            done = [m for line in child.lines if (m := round_line(k).match(line))]
            if done:
                up += int(done[-1][1])
                total += int(done[-1][1])
            elif said:
                up += int(said[-1][2])
                total += int(said[-1][3])
        return f"{up} of {total} agents connected (of the generators that said)"

    def errors(self) -> int:
        """Error lines the agents' sessions logged (a bug; see the generators' logs)."""
        return sum(1 for c in self.children for line in c.lines if line.startswith("fleet "))

    def cpu(self) -> float:
        return sum(cpu_seconds(c.pid) for c in self.children if c.alive())

    def stop(self) -> None:
        for child in self.children:
            child.stop(timeout=10)


REFUSED = re.compile(r'^transporter_connections_refused(?:_total)?\{listener="([^"]+)"\} (\S+)$')


def refused(cp: ControlPlane, token: str) -> str:
    """The control plane's count of connections closed at once past its bounds, by listener
    (``GET /metrics``)."""
    api = Api(cp.api_url, token, cp.data_dir)
    try:
        api.connection.request("GET", "/metrics", headers=api.headers)
        text = api.connection.getresponse().read().decode()
    finally:
        api.close()
    found = [m for line in text.splitlines() if (m := REFUSED.match(line))]
    return ", ".join(f"{m[1]} {float(m[2]):.0f}" for m in found) or "none counted"


def connected(cp: ControlPlane, token: str) -> int:
    """Agents ``GET /agents`` says are connected."""
    api = Api(cp.api_url, token, cp.data_dir)
    try:
        _, body = api.call("GET", "/agents")
    finally:
        api.close()
    return sum(1 for a in body["items"] if a["status"] == "connected")


@contextmanager
def running(args: argparse.Namespace, work: Path) -> Iterator[tuple[ControlPlane, Generators]]:
    with ExitStack() as stack:
        cp = ControlPlane(work / "cp", work / "cp.log")
        stack.callback(cp.stop)
        cp.start(args.timeout)
        fleet = Generators(cp, args.agents, args.processes, work, args)
        stack.callback(fleet.stop)
        yield cp, fleet


def connect(cp: ControlPlane, fleet: Generators, token: str, args: argparse.Namespace) -> None:
    """Every agent connects at once: how long until all are, and the memory they hold."""
    took = fleet.bundles(args.timeout)
    print(f"bundles issued          {args.agents} in {took:.1f} s ({args.processes} processes)")
    time.sleep(SETTLE)
    rss_before = rss_kib(cp.pid)
    cpu_before = cpu_seconds(cp.pid), fleet.cpu()
    others = Others(cp, fleet)
    began = fleet.start()
    all_up = fleet.round(1, args.timeout) - began
    cp_cpu, fleet_cpu = cpu_seconds(cp.pid) - cpu_before[0], fleet.cpu() - cpu_before[1]
    print(
        f"all connected           {all_up:.1f} s after the start"
        f" (CPU: cp {cp_cpu:.1f} s = {cp_cpu / args.agents * 1000:.1f} ms per agent,"
        f" generators {fleet_cpu:.1f} s; {others.said()})"
    )
    print(f"refused while connecting {refused(cp, token)}")
    time.sleep(TRIM_INTERVAL + SETTLE)
    rss_after = rss_kib(cp.pid)
    print(
        f"cp RSS                  {rss_before / 1024:.1f} MiB before the agents,"
        f" {rss_after / 1024:.1f} MiB with {args.agents} connected"
    )
    per = (rss_after - rss_before) / args.agents
    print(f"per connection          {per:.1f} KiB (target <= 40 KiB)")


def rest(cp: ControlPlane, fleet: Generators, token: str, args: argparse.Namespace) -> None:
    """The control plane's CPU while every agent only heartbeats."""
    cp_cpu, fleet_cpu = cpu_seconds(cp.pid), fleet.cpu()
    others = Others(cp, fleet)
    time.sleep(args.rest)
    cp_cpu, fleet_cpu = cpu_seconds(cp.pid) - cp_cpu, fleet.cpu() - fleet_cpu
    print(
        f"heartbeats at rest      {cp_cpu / args.rest:.1%} of a core over {args.rest:.0f} s"
        f" (target <= 10%; the generators: {fleet_cpu / args.rest:.0%}; {others.said()})"
    )
    print(f"GET /agents             {connected(cp, token)} connected")


def storm(cp: ControlPlane, fleet: Generators, token: str, args: argparse.Namespace) -> None:
    """kill -9 of the control plane, a restart at once: how long until every agent is back."""
    assert cp.process is not None
    fleet.mark(2, args.timeout)
    fleet_cpu = fleet.cpu()
    machine = machine_cpu()
    killed = time.monotonic()
    cp.process.kill()
    cp.start(args.timeout)
    listening = time.monotonic() - killed
    back = fleet.round(2, args.timeout) - killed
    storm_cpu, fleet_cpu = cpu_seconds(cp.pid), fleet.cpu() - fleet_cpu
    took = time.monotonic() - killed
    others = max(0.0, machine_cpu() - machine - storm_cpu - fleet_cpu) / took
    print(f"cp restart (kill -9)    listening again {listening:.1f} s after the kill")
    print(
        f"all back                {back:.1f} s after the kill (target <= 60 s;"
        f" CPU: cp {storm_cpu:.1f} s since its start, generators {fleet_cpu:.1f} s;"
        f" other processes {others:.0%} of a core)"
    )
    print(f"refused in the storm    {refused(cp, token)}")
    time.sleep(SETTLE)
    rss = rss_kib(cp.pid) / 1024
    print(f"GET /agents             {connected(cp, token)} connected, cp RSS {rss:.1f} MiB")
    print(f"agents' error lines     {fleet.errors()}")


def measure(args: argparse.Namespace, work: Path) -> None:
    print(open_files(args.agents + FD_MARGIN), flush=True)
    with running(args, work) as (cp, fleet):
        token = create_token("--data-dir", str(cp.data_dir), name="bench", role="admin")
        connect(cp, fleet, token, args)
        rest(cp, fleet, token, args)
        storm(cp, fleet, token, args)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--rest", type=float, default=30.0, help="seconds of CPU at rest")
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds for each phase")
    parser.add_argument("--one-address", action="store_true", help="every agent from 127.0.0.1")
    parser.add_argument("--keep", action="store_true", help="keep the logs' folder")
    args = parser.parse_args()
    if not 1 <= args.agents <= MAX_AGENTS:
        parser.error(f"--agents: from 1 to {MAX_AGENTS}")
    if not 1 <= args.processes <= min(MAX_PROCESSES, args.agents):
        parser.error(f"--processes: from 1 to {MAX_PROCESSES}, at most one per agent")
    if not 1 <= args.rest <= 600:
        parser.error("--rest: from 1 to 600 seconds")
    if not 10 <= args.timeout <= 600:
        parser.error("--timeout: from 10 to 600 seconds")
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        measure(args, work)
    except (TimeoutError, RuntimeError) as exc:
        print(f"FAILED: {exc}\nlogs in {work}", file=sys.stderr)
        return 1
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"logs in {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
