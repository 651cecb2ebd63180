"""Crash safety: kill -9 of the control plane at random moments while a producer streams events
(each makes a ConfigMap of its own), restarted at once on the same ports and store, cycle after
cycle; then every accepted event must have completed and the API server must hold exactly the
events' objects. For each store: the embedded SQLite file, and Redis with AOF and
``appendfsync always``.

    .venv/bin/python bench/crash.py [--cycles 20] [--events 500] [--stores sqlite,redis]
                                    [--batch 1] [--up-max 1.0] [--seed N]

The control plane, the agent, the API server and Redis are real processes on this machine; the
producer retries each event with its own fixed id until the control plane answers, as a real
one would. Exit code 1 when an event was lost or an object is wrong (the logs are kept then).

Columns: kills in all and while the producer was still submitting (mid-stream); what the control
plane was doing when killed (starting, serving, serving its reconnected agent); events accepted
(202, or 200 "exists" when a retry found stored an event whose 202 the kill swallowed:
retry-found); accepted events that did not complete (lost); ConfigMaps missing, extra or with
other data (wrong); ``transporter audit verify`` of the store afterwards (audit).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.bed.crashloop import CrashReport, CrashSettings, cp_kill_cycles
from tests.bed.kube import running_cluster
from tests.bed.redis import running_redis

STORES = ("sqlite", "redis")


def run_store(store: str, kubeconfig: Path, work: Path, settings: CrashSettings) -> CrashReport:
    if store == "sqlite":
        return cp_kill_cycles(
            store_name=store, store=None, kubeconfig=kubeconfig, work=work, settings=settings
        )
    with running_redis(work / "redis", aof=True) as redis:
        return cp_kill_cycles(
            store_name=store, store=redis.url, kubeconfig=kubeconfig, work=work, settings=settings
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cycles", type=int, default=20, help="kills per store (default 20)")
    parser.add_argument("--events", type=int, default=500, help="events per store (default 500)")
    parser.add_argument("--stores", default=",".join(STORES), help="sqlite,redis (default both)")
    parser.add_argument(
        "--up-max",
        type=float,
        default=1.0,
        help="longest the control plane serves before a kill, seconds (default 1.0)",
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=1,
        help="events per request: 1 for POST /events (default), more for POST /events/batch",
    )
    parser.add_argument("--seed", type=int, help="random seed (default: a new one per store)")
    args = parser.parse_args()
    stores = [s for s in args.stores.split(",") if s]
    if not stores or set(stores) - set(STORES):
        parser.error(f"--stores: choose from {', '.join(STORES)}")
    if not 1 <= args.batch <= 1000:
        parser.error("--batch: from 1 to 1000")
    settings = CrashSettings(
        cycles=args.cycles,
        events=args.events,
        batch=args.batch,
        up=(0.0, args.up_max),
        seed=args.seed,
    )
    began = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="bench-crash-"))
    reports = []
    with running_cluster("bench", work / "cluster") as cluster:
        for store in stores:
            report = run_store(store, cluster.kubeconfig, work / store, settings)
            print(report.describe(), file=sys.stderr, flush=True)
            reports.append(report)
    total = time.monotonic() - began

    print(
        f"{'store':8} {'cycles':>6} {'mid-stream':>10} {'start/serve/agent':>17}"
        f" {'accepted':>9} {'retry-found':>11} {'lost':>5} {'wrong':>6} {'audit':>7} {'time':>8}"
    )
    for r in reports:
        kills = "/".join(str(r.kills[k]) for k in ("starting", "serving", "agent connected"))
        print(
            f"{r.store:8} {r.cycles:>6} {r.kills_in_stream:>10} {kills:>17}"
            f" {r.accepted:>4}/{r.events:<4} {r.existed:>11} {len(r.lost):>5} {len(r.wrong):>6}"
            f" {'intact' if r.audit_intact else 'BROKEN':>7} {r.seconds:>7.1f}s"
        )
    print(f"events lost       {sum(len(r.lost) for r in reports)}")
    print(f"objects wrong     {sum(len(r.wrong) for r in reports)} (distinct ConfigMaps)")
    print(f"total time        {total:.1f} s")
    if all(r.ok for r in reports):
        shutil.rmtree(work, ignore_errors=True)
        return 0
    print(f"logs kept in {work}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
