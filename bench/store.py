"""The store's share of one event's way, alone: per event, the submit (in batches, as
``POST /events/batch`` does), the ``assigned`` record with its audit entry, and the ``received``
phase (each in batches, as the control plane's writer groups them), for each store. The events
go through in waves of one batch, each step after the other, as in the control plane.

    .venv/bin/python bench/store.py [--events 5000] [--batch 100] [--store sqlite|redis|both]
                                    [--manifest-bytes N]

No network but Redis's, no other process busy: a steadier figure than bench/throughput.py's for
changes to the store. It prints wall time per event and the CPU this process spent per event
(for Redis, redis-server's own CPU is not in it). ``--manifest-bytes`` pads each event's one
ConfigMap to about that size, to see what the store's work costs with larger events.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.bed.redis import running_redis

from transporter.protocol.model import (
    AuditEntry,
    Event,
    EventState,
    K8sPayload,
    Phase,
)
from transporter.protocol.status import StatusUpdate
from transporter.store.base import Store
from transporter.store.redis import RedisStore
from transporter.store.sqlite import SQLiteStore

STEPS = ("submit", "assigned", "received")
MANIFEST = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bench\ndata:\n  a: b\n"


def _events(count: int, agents: int, manifest_bytes: int) -> list[Event]:
    now = time.time()
    padding = max(manifest_bytes - len(MANIFEST), 0)
    manifest = MANIFEST + (f"  pad: {'x' * padding}\n" if padding else "")
    return [
        Event(
            id=str(uuid.uuid4()),
            target_agent=f"bench-{n % agents}",
            payload=K8sPayload(manifests=(manifest,)),
            ttl=86400,
            created_at=now,
        )
        for n in range(count)
    ]


def _audit(event: Event, action: str, at: float) -> AuditEntry:
    return AuditEntry(at=at, action=action, agent_id=event.target_agent, event_id=event.id)


async def measure(
    kind: str, store: Store, count: int, batch: int, *, manifest_bytes: int = 0
) -> None:
    """Events go through in waves of ``batch``: submitted, then sent (``assigned``), then
    received, as they follow each other in the control plane."""
    events = _events(count, 100, manifest_bytes)
    wall = dict.fromkeys(STEPS, 0.0)
    cpu = dict.fromkeys(STEPS, 0.0)
    for start in range(0, count, batch):
        chunk = events[start : start + batch]
        now = time.time()
        sent = StatusUpdate(at=now, state=EventState.ASSIGNED, message="sent to agent")
        received = StatusUpdate(at=now, state=EventState.IN_PROGRESS, phase=Phase.RECEIVED)
        steps: dict[str, Callable[[], Awaitable[object]]] = {
            "submit": partial(
                store.submit_many, [(e, _audit(e, "event.accepted", now)) for e in chunk]
            ),
            "assigned": partial(
                store.update_many, [(e.id, sent, _audit(e, "event.delivered", now)) for e in chunk]
            ),
            "received": partial(store.update_many, [(e.id, received, None) for e in chunk]),
        }
        for name, step in steps.items():
            started, used = time.perf_counter(), time.process_time()
            await step()
            wall[name] += time.perf_counter() - started
            cpu[name] += time.process_time() - used
    for name in STEPS:
        print(
            f"{kind:<7} {name:<9} {wall[name] / count * 1e6:7.0f} µs/event wall"
            f" {cpu[name] / count * 1e6:7.0f} µs/event CPU"
        )
    total_wall, total_cpu = sum(wall.values()), sum(cpu.values())
    print(
        f"{kind:<7} {'all':<9} {total_wall / count * 1e6:7.0f} µs/event wall"
        f" {total_cpu / count * 1e6:7.0f} µs/event CPU ({count / total_wall:.0f} events/s)"
    )


async def run(args: argparse.Namespace, work: Path, redis_url: str | None) -> None:
    if args.store in ("sqlite", "both"):
        sqlite = await SQLiteStore.open(work / "bench.db")
        try:
            await measure(
                "sqlite", sqlite, args.events, args.batch, manifest_bytes=args.manifest_bytes
            )
        finally:
            await sqlite.aclose()
    if redis_url is not None:
        async with RedisStore.open(redis_url) as redis:
            await measure(
                "redis", redis, args.events, args.batch, manifest_bytes=args.manifest_bytes
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--store", choices=("sqlite", "redis", "both"), default="both")
    parser.add_argument("--manifest-bytes", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.store == "sqlite":
            trio.run(run, args, work, None)
        else:
            with running_redis(work / "redis") as redis:
                trio.run(run, args, work, redis.url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
