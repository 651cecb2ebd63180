"""One load-generator process of bench/scale.py, never used in tests: agents ``--first`` to
``--first + --count - 1`` (ids ``bench-N``), each a real :class:`Session` with a bundle of its
own (issued here from the CA in ``--cp-data-dir``, as ``transporter bundle create`` does), with
mutual TLS and the agent's own jittered backoff.

    python bench/fleet.py --cp-url wss://… --cp-data-dir DIR --first 0 --count 1250

It talks to its parent in lines. On stdout, each ``key value...``:

    bundles COUNT SECONDS          the bundles are issued; then it waits for SIGUSR1 (so that
                                   every generator starts at once)
    round 1 COUNT MONOTONIC        every agent is registered, at ``time.monotonic()`` (one
                                   clock for the whole host)
    marked K                       on SIGUSR2 (sent just before the control plane is killed):
                                   each agent's registrations so far are noted
    round K COUNT MONOTONIC        every agent has registered again since mark K and is up
    progress K CONNECTED COUNT     once a second while round K is not complete
    errors N                       agents' sessions that failed with a bug (logged on stderr)

Each agent dials from a loopback address of its own (127.x.y.z) unless ``--one-address``: the
control plane bounds TLS handshakes per client address (as real agents come from many).
"""

from __future__ import annotations

import argparse
import contextvars
import logging
import random
import resource
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
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

MAX_AGENTS = 20_000
"""Agents in one generator process at most (each holds a socket and a TLS context)."""
PROGRESS_EVERY = 1.0
"""Seconds between ``progress`` lines while a round is incomplete."""
LOOK_EVERY = 0.05
"""Seconds between looks at the sessions' state (the rounds' times are this precise)."""
GO_TIMEOUT = 600.0
"""Seconds to wait for SIGUSR1 before giving up."""

_SOURCE: contextvars.ContextVar[str | None] = contextvars.ContextVar("source", default=None)
"""The local address the current agent task dials from (each task inherits the value set when
it was started)."""


def source_address(n: int) -> str:
    """Agent ``n``'s own loopback address: 127.1.0.1 onward, never a .0 or .255 host byte."""
    high, low = divmod(n, 254)
    return f"127.{1 + high // 256}.{high % 256}.{low + 1}"


def dial_from_own_address() -> None:
    """Make ``trio.open_tcp_stream`` (which the agent's dialler calls) bind the calling agent's
    address from :data:`_SOURCE`: only the local address changes, nothing of the session."""
    original: Callable[..., Any] = trio.open_tcp_stream

    async def open_tcp_stream(host: Any, port: int, **kwargs: Any) -> trio.SocketStream:
        source = _SOURCE.get()
        if source is not None and "local_address" not in kwargs:
            kwargs["local_address"] = source
        stream: trio.SocketStream = await original(host, port, **kwargs)
        return stream

    trio.open_tcp_stream = open_tcp_stream


def raise_open_files(needed: int) -> int:
    """Raise this process's soft limit of open files to its hard limit; the soft limit now.
    Exits with a message naming the limit when even the hard one is below ``needed``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        sys.exit(f"fleet: open files: hard limit {hard} < {needed} needed (ulimit -Hn)")
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Instant:
    """Reports success at once: no Kubernetes behind it (the bench sends no events)."""

    async def __call__(self, event: Event, report: Reporter) -> None:
        report(EventState.COMPLETED, Phase.COMPLETED, "benchmark: not applied", ())


def credentials(cp_data_dir: Path, ids: list[str], into: Path) -> list[dict[str, Any]]:
    """Each agent's TLS context and the control plane's signing key, from a bundle of its own."""
    signer, _ = open_signing_key(cp_data_dir, create=False)
    authority, _ = open_authority(cp_data_dir, create=False)
    made = []
    for agent_id in ids:
        write_bundle(authority, signer, agent_id, into / agent_id, days=1)
        bundle = load_bundle(into / agent_id)
        made.append({"ssl_context": bundle.ssl_context(), "signing_key": bundle.signing_key})
    return made


def say(*words: object) -> None:
    print(*words, flush=True)


async def complete(sessions: list[Session], k: int, since: list[int]) -> None:
    """Say when every session has registered more often than ``since`` says and is up."""
    last_progress = 0.0
    while True:
        pairs = zip(sessions, since, strict=True)
        up = sum(1 for s, b in pairs if s.connections > b and s.connected.is_set())
        now = time.monotonic()
        if up == len(sessions):
            say("round", k, up, f"{now:.3f}")
            return
        if now - last_progress >= PROGRESS_EVERY:
            say("progress", k, up, len(sessions))
            last_progress = now
        await trio.sleep(LOOK_EVERY)


async def watch(sessions: list[Session], rounds: int, marks: AsyncIterator[int]) -> None:
    """Round 1: every session registered; each later round: every session registered again
    since the mark (SIGUSR2) that began it."""
    await complete(sessions, 1, [0] * len(sessions))
    for k in range(2, rounds + 1):
        async for _ in marks:
            break
        since = [s.connections for s in sessions]
        say("marked", k)
        await complete(sessions, k, since)


class Bugs(logging.Handler):
    """Counts the sessions' error lines (a bug of ours; the line itself goes to stderr too)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


async def run(
    args: argparse.Namespace, found: list[dict[str, Any]], ids: list[str], took: float
) -> None:
    sessions: list[Session] = []
    with (
        trio.open_signal_receiver(signal.SIGUSR1) as go,
        trio.open_signal_receiver(signal.SIGUSR2) as marks,
    ):
        say("bundles", len(found), f"{took:.1f}")
        with trio.fail_after(GO_TIMEOUT):
            async for _ in go:
                break
        async with trio.open_nursery() as nursery:
            start(nursery, args, found, ids, sessions)
            await watch(sessions, args.rounds, marks)
            await trio.sleep(args.linger)
            nursery.cancel_scope.cancel()


def start(
    nursery: trio.Nursery,
    args: argparse.Namespace,
    found: list[dict[str, Any]],
    ids: list[str],
    sessions: list[Session],
) -> None:
    """Start every agent's session (each from its own address unless ``--one-address``)."""
    backoff = Backoff(first=args.backoff_first, cap=args.backoff_cap)
    for n, agent_id in enumerate(ids):
        session = Session(
            agent_info(agent_id, agent_id, {"bench": "scale"}),
            args.cp_url,
            Instant(),
            backoff=backoff,
            rng=random.Random(f"{args.seed}-{agent_id}"),
            **found[n],
        )
        sessions.append(session)
        if not args.one_address:
            _SOURCE.set(source_address(args.first + n))
        nursery.start_soon(session.run)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cp-url", required=True)
    parser.add_argument("--cp-data-dir", type=Path, required=True)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2, help="registrations to report (1..)")
    parser.add_argument("--linger", type=float, default=3600.0, help="seconds up after the last")
    parser.add_argument("--backoff-first", type=float, default=Backoff().first)
    parser.add_argument("--backoff-cap", type=float, default=Backoff().cap)
    parser.add_argument("--one-address", action="store_true", help="every agent from 127.0.0.1")
    parser.add_argument("--seed", default="scale")
    args = parser.parse_args()
    if not 1 <= args.count <= MAX_AGENTS:
        parser.error(f"--count: from 1 to {MAX_AGENTS}")
    if not 0 <= args.first <= 10 * MAX_AGENTS:
        parser.error(f"--first: from 0 to {10 * MAX_AGENTS}")
    if not 1 <= args.rounds <= 100:
        parser.error("--rounds: from 1 to 100")
    if not args.cp_url.startswith("wss://"):
        parser.error("--cp-url: a wss:// URL (the bench measures mutual TLS)")
    raise_open_files(args.count + 64)
    logging.basicConfig(level=logging.ERROR, format="fleet %(name)s: %(message)s")
    bugs = Bugs()
    logging.getLogger().addHandler(bugs)
    if not args.one_address:
        dial_from_own_address()
    ids = [f"bench-{n}" for n in range(args.first, args.first + args.count)]
    with tempfile.TemporaryDirectory(prefix="fleet-") as tmp:
        began = time.monotonic()
        found = credentials(args.cp_data_dir, ids, Path(tmp))
        try:
            trio.run(run, args, found, ids, time.monotonic() - began)
        finally:
            say("errors", bugs.count)
    return 0


if __name__ == "__main__":
    sys.exit(main())
