"""Memory: RSS of an idle agent, and of a control plane holding many idle agent connections.

    .venv/bin/python bench/memory.py [--connections 1000 | 0] [--agent-binary dist/transporter]
                                     [--runs N] [--agent-flag=--metrics-listen=127.0.0.1:0]

The agent is the real ``transporter agent`` on the test bed's cluster. The connections come from
bench/agents.py (real sessions, registered and heartbeating) in another process. Targets
(issue 3): idle agent <= 50 MB; control plane <= 25 KiB per connection.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.bed.kube import running_cluster

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
        print(f"idle agent RSS          {_sizes(kib)} (target <= 50 MB)")
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
    _print_agent(agent_kibs)
    if not args.connections:
        return 0
    per = (after - before) / args.connections
    print(
        f"control plane RSS       {before / 1024:6.1f} MiB idle, {after / 1024:.1f} MiB with "
        f"{args.connections} agent connections"
    )
    print(f"per agent connection    {per:6.1f} KiB (target <= 25 KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
