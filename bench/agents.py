"""A benchmark harness, never used in tests: many agents in one process whose apply step is an
immediate success, so that the control plane's own cost can be measured.

    python bench/agents.py --cp-url wss://… --cp-data-dir DIR --agents 100 --expect 20000

Prints ``ready`` once every agent is registered, then ``received N in S s`` when the agents have
received ``--expect`` events in all (S counts from the first receipt). Each agent has its own
bundle, issued (as ``transporter bundle create`` does) from the CA and signing key in the
control plane's ``--cp-data-dir``; it connects with mutual TLS and checks every event's signature.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transporter.agent.bundle import load_bundle
from transporter.agent.session import Backoff, Session, agent_info
from transporter.agent.worker import Reporter
from transporter.cp.admin.bundles import write_bundle
from transporter.cp.key_files import open_signing_key
from transporter.cp.pki import open_authority
from transporter.protocol.model import Event, EventState, Phase
from transporter.security.ed25519 import PublicKey


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


def credentials(cp_data_dir: Path, agents: int, into: Path, *, tls: bool) -> list[dict[str, Any]]:
    """Each agent's TLS settings (from a bundle of its own, as ``transporter bundle create``
    writes them) and the control plane's signing key; the key only on a ``ws://`` channel."""
    signer, _ = open_signing_key(cp_data_dir, create=False)
    if not tls:
        return [{"signing_key": PublicKey(signer.public_raw)}] * agents
    authority, _ = open_authority(cp_data_dir, create=False)
    made = []
    for n in range(agents):
        write_bundle(authority, signer, f"bench-{n}", into / f"bench-{n}", days=1)
        bundle = load_bundle(into / f"bench-{n}")
        made.append({"ssl_context": bundle.ssl_context(), "signing_key": bundle.signing_key})
    return made


async def run(
    cp_url: str, agents: int, expect: int, concurrency: int, credentials: list[dict[str, Any]]
) -> None:
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
                **(credentials[n] if credentials else {}),
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
    parser.add_argument(
        "--cp-data-dir", type=Path, help="the control plane's data folder (its CA): for wss://"
    )
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--expect", type=int, default=0, help="0: stay connected until killed")
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    if args.cp_url.startswith("wss://") and args.cp_data_dir is None:
        parser.error(
            "a wss:// control plane needs --cp-data-dir (its CA issues the agents' bundles)"
        )
    with tempfile.TemporaryDirectory() as tmp:
        tls = args.cp_url.startswith("wss://")
        found = (
            []
            if args.cp_data_dir is None
            else credentials(args.cp_data_dir, args.agents, Path(tmp), tls=tls)
        )
        trio.run(run, args.cp_url, args.agents, args.expect, args.concurrency, found)
    return 0


if __name__ == "__main__":
    sys.exit(main())
