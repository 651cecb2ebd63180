"""Throughput: events per second from POST /events to receipt by the agent, with 100 connected
agents whose apply step is an immediate success (bench/agents.py), for each store.

    .venv/bin/python bench/throughput.py [--events 5000] [--agents 100] [--clients 4]

Everything runs on this machine: the control plane, the agents' process and the load (keep-alive
HTTP clients in threads) share its cores. Target (issue 3): >= 3,000 events/s. The control
plane's CPU per routed event (everything on: TLS, signed events, tokens, a durable store) is the
figure of issue 15: at most 2.0 ms with ``--batch 1``, 0.9 ms with ``--batch 100``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.bed.redis import running_redis

from bench.common import Api, agents_harness, control_plane, cpu_seconds, rss_kib

MANIFEST = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bench\ndata:\n  a: b\n"


def load(
    api_url: str, token: str, data_dir: Path, events: int, agents: int, clients: int, batch: int
) -> None:
    """POST ``events`` events from ``clients`` threads: one per request when ``batch`` is 1,
    else ``batch`` per ``POST /events/batch``."""

    def body(n: int) -> dict[str, object]:
        return {"target_agent": f"bench-{n % agents}", "payload": {"manifests": [MANIFEST]}}

    def post(offset: int) -> None:
        api = Api(api_url, token, data_dir)
        mine = list(range(offset, events, clients))
        for start in range(0, len(mine), batch):
            chunk = mine[start : start + batch]
            if batch == 1:
                status, answer = api.call("POST", "/events", body(chunk[0]))
            else:
                status, answer = api.call(
                    "POST", "/events/batch", {"events": [body(n) for n in chunk]}
                )
            assert status == 202, answer
        api.close()

    threads = [threading.Thread(target=post, args=(c,)) for c in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def measure(kind: str, store_args: list[str], work: Path, args: argparse.Namespace) -> None:
    with (
        control_plane(work / f"cp-{kind}", *store_args) as (cp, api_url, agent_url, token),
        agents_harness(agent_url, work / f"cp-{kind}", args.agents, expect=args.events) as agents,
    ):
        cpu_before = cpu_seconds(cp.pid), cpu_seconds(agents.pid)
        start = time.perf_counter()
        load(
            api_url, token, work / f"cp-{kind}", args.events, args.agents, args.clients, args.batch
        )
        posted = time.perf_counter() - start
        assert agents.stdout is not None
        done = agents.stdout.readline()
        elapsed = time.perf_counter() - start
        if not done.startswith("received"):
            raise RuntimeError(f"agents: {done!r}")
        cp_cpu = cpu_seconds(cp.pid) - cpu_before[0]
        agents_cpu = cpu_seconds(agents.pid) - cpu_before[1]
        print(
            f"{kind:<7} {args.events} events to {args.agents} agents, {args.batch}/request: "
            f"{args.events / elapsed:7.0f} events/s POST->receipt "
            f"({args.events / posted:.0f}/s accepted; cp RSS {rss_kib(cp.pid) / 1024:.0f} MiB; CPU "
            f"cp {cp_cpu / elapsed:.0%}, agents {agents_cpu / elapsed:.0%} of a core); "
            f"cp CPU {cp_cpu / args.events * 1000:.2f} ms per routed event",
            flush=True,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument(
        "--batch",
        type=int,
        default=100,
        help="events per POST /events/batch; 1 posts each event on its own",
    )
    parser.add_argument("--store", choices=("sqlite", "redis", "both"), default="both")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.store in ("sqlite", "both"):
            measure("sqlite", [], work, args)
        if args.store in ("redis", "both"):
            with running_redis(work / "redis") as redis:
                measure("redis", ["--store", redis.url], work, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
