"""A benchmark harness, never used in tests: many agents in one process whose apply step is an
immediate success, so that the control plane's own cost can be measured.

    python bench/agents.py --cp-url ws://… --agents 100 --expect 20000

Prints ``ready`` once every agent is registered, then ``received N in S s`` when the agents have
received ``--expect`` events in all (S counts from the first receipt).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transporter.agent.session import Backoff, Session, agent_info
from transporter.agent.worker import Reporter
from transporter.protocol.model import Event, EventState, Phase


class Counter:
    def __init__(self, expect: int) -> None:
        self.expect = expect
        self.count = 0
        self.first = 0.0
        self.done = trio.Event()

    def received(self) -> None:
        if self.count == 0:
            self.first = time.perf_counter()
        self.count += 1
        if self.count >= self.expect:
            self.done.set()


class InstantRunner:
    """Reports success at once: no Kubernetes behind it."""

    def __init__(self, counter: Counter) -> None:
        self.counter = counter

    async def __call__(self, event: Event, report: Reporter) -> None:
        self.counter.received()
        report(EventState.COMPLETED, Phase.COMPLETED, "benchmark: not applied", ())


async def run(cp_url: str, agents: int, expect: int, concurrency: int) -> None:
    counter = Counter(expect)
    sessions = []
    async with trio.open_nursery() as nursery:
        for n in range(agents):
            info = agent_info(f"bench-{n}", f"bench-{n}", {"bench": "yes"})
            session = Session(
                info,
                cp_url,
                InstantRunner(counter),
                concurrency=concurrency,
                backoff=Backoff(first=0.2, cap=2),
            )
            sessions.append(session)
            nursery.start_soon(session.run)
        for session in sessions:
            await session.connected.wait()
        print("ready", flush=True)
        if expect:
            await counter.done.wait()
            elapsed = time.perf_counter() - counter.first
            print(f"received {counter.count} in {elapsed:.3f} s", flush=True)
        else:
            await trio.sleep_forever()
        nursery.cancel_scope.cancel()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cp-url", required=True)
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--expect", type=int, default=0, help="0: stay connected until killed")
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    trio.run(run, args.cp_url, args.agents, args.expect, args.concurrency)
    return 0


if __name__ == "__main__":
    sys.exit(main())
