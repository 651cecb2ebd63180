"""Memory: RSS of an idle agent, and of a control plane holding many idle agent connections.

    .venv/bin/python bench/memory.py [--connections 1000 | 0] [--agent-binary dist/transporter]
                                     [--runs N] [--agent-flag=--metrics-listen=127.0.0.1:0]

The agent is the real ``transporter agent`` on the test bed's cluster. The connections come from
bench/agents.py (real sessions, registered and heartbeating) in another process. Targets: idle
agent <= 35 MiB and idle control plane <= 45 MiB (issue 15); control plane <= 25 KiB per
connection (issue 3).

Fresh bytecode of the package and of the venv's packages is written first (compileall, into
``__pycache__``, timestamped as an import writes it), so that the figures do not depend on what
earlier runs left: a role started from sources without fresh bytecode compiles them at every
start (with PYTHONDONTWRITEBYTECODE=1 it never writes what it compiled), and part of the
compiler's memory stays. A process that imported what an agent does read 0.3 MiB more RSS
without the package's bytecode, 5.3 MiB more without the venv's packages' either (5.8 MiB with
none at all). The standard library's bytecode is the interpreter's install's: if it lacks it,
the figures carry a warning.
"""

from __future__ import annotations

import argparse
import compileall
import json
import py_compile
import re
import ssl
import statistics
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.bed.kube import running_cluster

import transporter
from bench.common import (
    TRANSPORTER,
    Api,
    agents_harness,
    control_plane,
    create_bundle,
    rss_kib,
    started,
    wait_for_agents,
)
from transporter.cp.trim import INTERVAL as TRIM_INTERVAL

SETTLE = 3.0
"""Seconds to let heartbeats and allocations settle before reading RSS."""
TRIMMED = TRIM_INTERVAL + SETTLE
"""Seconds after the agents connected before the control plane's RSS is read: it gives freed
memory back (:mod:`transporter.cp.trim`) at most this long after connections came."""


def _compiled() -> list[str]:
    """Fresh bytecode in ``__pycache__`` for this checkout's package and the venv's packages,
    where the roles' interpreters look for it (timestamped, as an import writes it); a warning
    for what is left without (the standard library's is not ours to write)."""
    warnings: list[str] = []
    folders = {*transporter.__path__, sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    for folder in sorted(folders):
        if not compileall.compile_dir(
            folder, quiet=2, invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP
        ):
            warnings.append(f"some of {folder} did not compile")
    if not all(Path(module.__cached__ or "").is_file() for module in (argparse, json, ssl)):
        warnings.append(f"the standard library in {sysconfig.get_path('stdlib')} lacks bytecode")
    return [f"warning: {text}: the figures may read high" for text in warnings]


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the single file runs its interpreter as a child)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *(grandchild for child in children for grandchild in _tree(int(child)))]


def _idle_agent(argv: list[str], api: Api, runs: int) -> list[int]:
    """The agent's RSS (KiB) once registered and settled, started ``runs`` times in a row."""
    figures: list[int] = []
    for _ in range(runs):
        with started(argv, re.compile(r"(registered) with")) as (agent, _):
            wait_for_agents(api, 1)
            time.sleep(SETTLE)
            figures.append(sum(rss_kib(pid) for pid in _tree(agent.pid)))
    return figures


def _sizes(kib: float) -> str:
    return f"{kib / 1024:6.1f} MiB = {kib * 1024 / 1e6:.1f} MB"


def _print_agent(figures: list[int]) -> None:
    for kib in figures:
        print(f"idle agent RSS          {_sizes(kib)} (target <= 35 MiB)")
    if len(figures) > 1:
        print(f"  over {len(figures)} runs: least  {_sizes(min(figures))}")
        print(f"                median {_sizes(statistics.median(figures))}")
        print(f"                most   {_sizes(max(figures))}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--connections", type=int, default=1000, help="0: measure the idle agent only"
    )
    parser.add_argument(
        "--agent-binary",
        type=Path,
        help="run the agent from this single file (make binary): its RSS is then the sum of the"
        " file's bootloader and the interpreter it starts",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=1,
        help="start the idle agent this many times in a row (one cluster, one control plane)"
        " and print each figure, then the least, median and most",
    )
    parser.add_argument(
        "--agent-flag",
        action="append",
        default=[],
        help="one more flag for the idle agent, repeatable (--agent-flag=--metrics-listen=HOST:0"
        " measures it serving its metrics)",
    )
    args = parser.parse_args()
    warnings = _compiled()
    agent_command = [str(args.agent_binary)] if args.agent_binary else list(TRANSPORTER)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with (
            running_cluster("bench", work / "cluster") as cluster,
            control_plane(work / "cp") as (cp, api_url, agent_url, token),
        ):
            api = Api(api_url, token, work / "cp")
            agent_argv = [
                *agent_command,
                "agent",
                "--bundle",
                str(create_bundle(work / "cp", "idle", work / "bundle")),
                "--cp-url",
                agent_url,
                "--kubeconfig",
                str(cluster.kubeconfig),
                *args.agent_flag,
            ]
            agent_kibs = _idle_agent(agent_argv, api, max(args.runs, 1))
            if args.connections:
                time.sleep(SETTLE)
                before = rss_kib(cp.pid)
                with agents_harness(agent_url, work / "cp", args.connections):
                    wait_for_agents(api, args.connections)
                    time.sleep(TRIMMED)
                    after = rss_kib(cp.pid)
            api.close()
    print(*warnings, sep="\n", end="\n" if warnings else "")
    _print_agent(agent_kibs)
    if not args.connections:
        return 0
    per = (after - before) / args.connections
    print(
        f"control plane RSS       {before / 1024:6.1f} MiB idle (target <= 45 MiB), "
        f"{after / 1024:.1f} MiB with {args.connections} agent connections"
    )
    print(f"per agent connection    {per:6.1f} KiB (target <= 25 KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
