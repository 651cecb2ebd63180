"""Agent connections per second a real control plane accepts: TCP, a full TLS handshake with
client certificates (no session resumption), ``register`` and its ``welcome``, then close.

    .venv/bin/python bench/mtls.py [--seconds 10] [--clients 8] [--agents 50]

``--clients`` dial at once, in one process beside the control plane (so on the same cores),
each as one of ``--agents`` agents (bundles issued from the control plane's CA, as
``transporter bundle create`` issues them). The same is then measured on a plain ``ws://``
channel (``--insecure-plain-ws``), which separates what TLS costs from what every connection
costs anyway (the agent's record and two audit entries written to the store). Prints figures;
the machine's load makes them vary.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import control_plane, cpu_seconds
from transporter.agent.bundle import Bundle, load_bundle
from transporter.agent.dial import connect
from transporter.cp.admin.bundles import write_bundle
from transporter.cp.key_files import open_signing_key
from transporter.cp.pki import open_authority

REGISTER_TIMEOUT = 30.0


def bundles(cp_data_dir: Path, agents: int, into: Path) -> list[Bundle]:
    authority, _ = open_authority(cp_data_dir, create=False)
    signer, _ = open_signing_key(cp_data_dir, create=False)
    made = []
    for n in range(agents):
        write_bundle(authority, signer, f"dial-{n}", into / f"dial-{n}", days=1)
        made.append(load_bundle(into / f"dial-{n}"))
    return made


async def hammer(
    url: str, agents: list[str], bundles: list[Bundle] | None, seconds: float, clients: int
) -> tuple[int, list[float]]:
    """Connections completed (welcome received) in ``seconds``, and each one's duration."""
    done = 0
    took: list[float] = []
    contexts = [bundle.ssl_context() for bundle in bundles] if bundles else None
    deadline = trio.current_time() + seconds

    async def client(index: int) -> None:
        nonlocal done
        n = index
        while trio.current_time() < deadline:
            slot = n % len(agents)
            n += clients
            start = time.perf_counter()
            async with connect(
                url,
                ssl_context=None if contexts is None else contexts[slot],
                max_message_size=1 << 20,
                connect_timeout=REGISTER_TIMEOUT,
            ) as channel:
                register = {"type": "register", "agent": {"id": agents[slot]}, "protocol": 1}
                await channel.send(json.dumps(register))
                with trio.fail_after(REGISTER_TIMEOUT):
                    answer = json.loads(await channel.receive())
                if answer["type"] != "welcome":
                    raise RuntimeError(f"refused: {answer}")
            took.append(time.perf_counter() - start)
            done += 1

    async with trio.open_nursery() as nursery:
        for index in range(clients):
            nursery.start_soon(client, index)
    return done, took


def measure(label: str, work: Path, args: argparse.Namespace, *extra: str) -> None:
    data = work / label
    with control_plane(data, *extra) as (cp, _, agent_url, _token):
        ids = [f"dial-{n}" for n in range(args.agents)]
        made = None if agent_url.startswith("ws://") else bundles(data, args.agents, work / "b")
        cpu_before = cpu_seconds(cp.pid)
        start = time.perf_counter()
        count, took = trio.run(hammer, agent_url, ids, made, args.seconds, args.clients)
        elapsed = time.perf_counter() - start
        cp_cpu = cpu_seconds(cp.pid) - cpu_before
    took.sort()
    p50 = took[len(took) // 2] * 1000
    p99 = took[min(len(took) - 1, round(len(took) * 0.99))] * 1000
    print(
        f"{label:6}  {count / elapsed:7.1f} connections/s  ({count} in {elapsed:.1f} s;"
        f" each p50 {p50:.1f} ms, p99 {p99:.1f} ms; control plane"
        f" {cp_cpu / elapsed * 100:.0f} % of a core, {cp_cpu / max(count, 1) * 1000:.2f} ms CPU"
        " per connection)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8, help="connections dialled at once")
    parser.add_argument("--agents", type=int, default=50, help="distinct agent ids")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print(
            f"agent connections accepted: {args.clients} clients for {args.seconds:g} s,"
            f" {args.agents} agent ids; full handshake, register, welcome, close"
        )
        measure("mtls", work, args)
        measure("plain", work, args, "--insecure-plain-ws")
    return 0


if __name__ == "__main__":
    sys.exit(main())
