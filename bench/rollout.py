"""A rollout to many agents against as many single events: time from the POST to every cluster
completed, and the control plane's CPU and memory meanwhile.

    .venv/bin/python bench/rollout.py [--agents 1000] [--store sqlite|redis|both] [--runs 1]

Each run starts a fresh control plane and ``--agents`` agents of bench/agents.py (whose apply
step is an immediate success, so the figures are the control plane's), then either

- ``rollout``: one ``POST /events`` with ``selector: bench=yes`` (every agent), followed by
  ``GET /rollouts/{id}`` until the rollout is final; or
- ``singles``: one ``POST /events`` per agent (4 client threads), followed by
  ``GET /events?state=completed`` until all are.

CPU is the control plane's user+system time over the interval, as a share of one core; memory
its largest RSS sampled every 20 ms and its RSS before the POST.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.bed.redis import running_redis

from bench.common import Api, agents_harness, control_plane, cpu_seconds, rss_kib
from bench.throughput import MANIFEST, load

POLL = 0.05


class PeakRss:
    """The largest RSS of ``pid`` while running (a sampling thread)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = rss_kib(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_kib(self.pid))


def rollout(api: Api, agents: int) -> str:
    body = {"selector": "bench=yes", "payload": {"manifests": [MANIFEST]}}
    status, answer = api.call("POST", "/events", body)
    assert status == 202, answer
    assert len(answer["agents"]) == agents, f"matched {len(answer['agents'])} of {agents}"
    rollout_id = answer["rollout_id"]
    while True:
        _, view = api.call("GET", f"/rollouts/{rollout_id}")
        if view["state"] in ("completed", "failed", "cancelled"):
            assert view["state"] == "completed", view["message"]
            return f"rollout {view['counts']}"
        time.sleep(POLL)


def singles(api_url: str, token: str, data_dir: Path, agents: int, clients: int = 4) -> str:
    load(api_url, token, data_dir, agents, agents, clients, batch=1)  # one event an agent
    api = Api(api_url, token, data_dir)
    while completed(api) < agents:
        time.sleep(POLL)
    api.close()
    return f"{agents} single events completed"


def completed(api: Api) -> int:
    """Events completed, counted over the pages of ``GET /events?state=completed``."""
    count, cursor = 0, ""
    while True:
        _, page = api.call("GET", f"/events?state=completed&limit=500{cursor}")
        count += len(page["items"])
        if not page.get("cursor"):
            return count
        cursor = f"&cursor={page['cursor']}"


def measure(kind: str, store: str, store_args: list[str], work: Path, agents: int) -> None:
    data = work / f"cp-{kind}-{store}-{time.monotonic_ns()}"
    with (
        control_plane(data, *store_args) as (cp, api_url, agent_url, token),
        agents_harness(agent_url, data, agents),
    ):
        api = Api(api_url, token, data)
        rss_before = rss_kib(cp.pid)
        cpu_before = cpu_seconds(cp.pid)
        start = time.perf_counter()
        run: Callable[[], str] = (
            (lambda: rollout(api, agents))
            if kind == "rollout"
            else (lambda: singles(api_url, token, data, agents))
        )
        with PeakRss(cp.pid) as peak:
            what = run()
        elapsed = time.perf_counter() - start
        cpu = cpu_seconds(cp.pid) - cpu_before
        api.close()
        print(
            f"{store:<6} {kind:<7} {agents} agents: {elapsed:6.2f} s POST -> all completed; cp CPU"
            f" {cpu:.2f} s ({cpu / elapsed:.0%} of a core); cp RSS {rss_before / 1024:.0f} MiB"
            f" before, {peak.peak / 1024:.0f} MiB peak  [{what}]",
            flush=True,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--store", choices=("sqlite", "redis", "both"), default="sqlite")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for _ in range(args.runs):
            for kind in ("rollout", "singles"):
                if args.store in ("sqlite", "both"):
                    measure(kind, "sqlite", [], work, args.agents)
                if args.store in ("redis", "both"):
                    with running_redis(work / f"redis-{kind}") as redis:
                        measure(kind, "redis", ["--store", redis.url], work, args.agents)
    return 0


if __name__ == "__main__":
    sys.exit(main())
