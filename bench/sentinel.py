"""What waiting for the replicas costs behind Sentinels: concurrent writers submit events through
``redis+sentinel://`` (a primary, two replicas and three Sentinels, real redis-servers with
``appendfsync always``, on free ports), with every write confirmed (``WAIT`` for every replica
in step, then the Sentinels asked that its server is still the primary) and not confirmed
(``wait_replicas=0``). Prints events/s and each submit's p50/p99.

    .venv/bin/python bench/sentinel.py [--events 2000] [--writers 8]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.bed import records as r
from tests.bed.sentinel import SentinelBed, running_sentinels

from bench.common import percentile
from transporter.config.store_spec import StoreSpec
from transporter.store import open_store

MODES = {"every replica, Sentinels asked": "", "not waiting (wait_replicas=0)": "wait_replicas=0"}


async def submit_all(bed: SentinelBed, query: str, events: int, writers: int) -> list[float]:
    """Seconds of each submit; ``writers`` tasks share ``events``."""
    took: list[float] = []
    prefix = f"b{time.monotonic_ns()}"
    async with open_store(StoreSpec.parse(bed.url(query))) as store:

        async def writer(first: int) -> None:
            for n in range(first, events, writers):
                event = r.event(f"{prefix}-{n}")
                start = time.perf_counter()
                await store.submit(event, r.accepted_audit(event))
                took.append(time.perf_counter() - start)

        async with trio.open_nursery() as nursery:
            for first in range(writers):
                nursery.start_soon(writer, first)
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--writers", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, running_sentinels(Path(folder)) as bed:
        for name, query in MODES.items():
            trio.run(submit_all, bed, query, args.writers * 5, args.writers)  # warm up
            start = time.perf_counter()
            took = trio.run(submit_all, bed, query, args.events, args.writers)
            wall = time.perf_counter() - start
            print(
                f"{name:32} {args.events / wall:6.0f} events/s  submit p50"
                f" {percentile(took, 50) * 1000:5.1f} ms  p99 {percentile(took, 99) * 1000:5.1f} ms"
            )


if __name__ == "__main__":
    main()
