"""Shutdown: how long a control plane takes to stop (SIGTERM) while agents are connected.

    .venv/bin/python bench/shutdown.py [--agents 100 1000]

The agents are bench/agents.py's (real sessions, mutual TLS, in one process). Every agent's
record is written ``disconnected`` (and audited) before the control plane exits; the figure is
from the signal to the process's end.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Api, agents_harness, control_plane, wait_for_agents


def stop_with(agents: int, work: Path) -> float:
    data_dir = work / f"cp-{agents}"
    with (
        control_plane(data_dir) as (cp, api_url, agent_url, token),
        agents_harness(agent_url, data_dir, agents),
    ):
        api = Api(api_url, token, data_dir)
        wait_for_agents(api, agents)
        api.close()
        start = time.perf_counter()
        cp.popen.send_signal(signal.SIGTERM)
        cp.popen.wait(120)
        return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", type=int, nargs="+", default=[100, 1000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for agents in args.agents:
            took = stop_with(agents, Path(tmp))
            print(f"{agents:5d} agents connected: the control plane stopped in {took:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
