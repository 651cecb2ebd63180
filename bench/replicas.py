"""Two control-plane replicas on one redis-server against one replica: events/s and POST ->
completed latency, with every agent connected to replica 1 and the events posted to replica 2
(cross-replica: the event and its progress go from one replica to the other through Redis) or
to replica 1 (same replica), beside a single replica (on a redis-server of its own); then kill
-9 of replica 1 and the time until each of its agents is served by replica 2.

    .venv/bin/python bench/replicas.py [--agents 20] [--events 2000] [--latency 200] [--rounds 10]

Loopback only. The agents are bench/agents.py's, in a process of their own: the real agent's
session (mutual TLS, each event's signature checked, reports and acknowledgements as ever) with
an apply step that reports success at once, so that the figures are the control planes' and
Redis's, not a cluster's. They are given both replicas' URLs, replica 1 first, and keep the
real agent's reconnection backoff (so the time to be served again includes its jittered
first delay after a connection ends). They all dial from 127.0.0.1: past the agent channel's
bound on handshakes from one address (``HANDSHAKES.per_address``, 32) a storm of them is cut
short and moves on to the other URL, as it would not from many hosts (bench/fleet.py gives
each its own address).

- events/s: ``--events`` events posted in batches of ``--batch`` by ``--clients`` threads, from
  the first POST until the agents have received them all (as bench/throughput.py); then the
  bench waits until all their reports are stored, before it times anything else;
- latency: ``--latency`` events one after the other (after 10 warm-up), each POSTed and then
  waited for (``GET /events/{id}?wait``) on the replica it was posted to, until ``completed``;
- the three cases run side by side and take turns (``--rounds``), so that whatever else the
  machine does weighs on each alike;
- served again: right after the kill, one event per agent is posted to replica 2; for each,
  the time from the kill to its ``completed`` entry in the timeline.

Target (issue 14): cross-replica delivery adds <= 5 ms at p50 to the single replica's latency.
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import attrs
import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.bed.redis import running_redis

from bench.agents import Counter, InstantRunner, credentials
from bench.common import Api, Child, control_plane, cpu_seconds, percentile
from bench.latency import STEPS, steps_of
from bench.throughput import load
from transporter.agent.session import Session, agent_info
from transporter.cp.channel import HANDSHAKES

MANIFEST = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bench\ndata:\n  a: b\n"
SHARED_KEYS = ("ca.crt", "ca.key", "event-signing.key")
"""What replicas on one store share: the CA agents trust, the key events are signed with."""
WARM_UP = 10
FINAL_ONLY = 1_000_000
"""``since`` beyond any timeline: the answer waits until the event is final."""
MAX_AGENTS, MAX_EVENTS, MAX_LATENCY = 500, 100_000, 5_000
TIMEOUT = 120.0
"""Seconds any one wait of the bench may take (agents to connect, events to arrive)."""


# --- the agents' process --------------------------------------------------------------------


class Tally(Counter):
    """Receipts counted; :meth:`reached` returns once there have been that many in all."""

    def __init__(self) -> None:
        super().__init__(0)
        self._bell = trio.Event()

    def received(self) -> None:
        self.count += 1
        self._bell.set()

    async def reached(self, count: int) -> None:
        while self.count < count:
            self._bell = trio.Event()
            await self._bell.wait()


SETTLE_LOOK = 0.01
"""Seconds between looks at the agents' reports not yet acknowledged (nothing signals it)."""


async def settled(sessions: Sequence[Session]) -> None:
    """Until every report of ``sessions`` is acknowledged (stored by the control plane), so
    that the next measurement does not wait behind the last one's reports."""

    def unsettled() -> bool:
        return any(len(session.reports) or session.worker.running for session in sessions)

    with trio.fail_after(TIMEOUT):
        while unsettled():  # noqa: ASYNC110 - no event says a report was acknowledged
            await trio.sleep(SETTLE_LOOK)


async def run_agents(urls: Sequence[str], found: list[dict[str, Any]]) -> None:
    """The agents, each dialling ``urls`` in order; ``ready N`` once all are registered (N of
    them with the first URL: one that does not take an agent in, in a storm of connections,
    sends it to the next), then
    for each ``expect N`` line on stdin, ``received`` once N events in all have come, and for
    each ``settle`` line, ``settled`` once every report is acknowledged."""
    tally = Tally()
    async with trio.open_nursery() as nursery:
        sessions = []
        for n, creds in enumerate(found):
            info = agent_info(f"bench-{n}", f"bench-{n}", {"bench": "yes"})
            session = Session(info, urls, InstantRunner(tally), concurrency=64, **creds)
            sessions.append(session)
            nursery.start_soon(session.run)
        for session in sessions:
            await session.connected.wait()
        first = sum(session.cp_url == urls[0] for session in sessions)
        print(f"ready {first}", flush=True)
        stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
        pending = b""
        while chunk := await stdin.receive_some(1024):
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                if line == b"settle":
                    await settled(sessions)
                    print("settled", flush=True)
                else:
                    await tally.reached(int(line.split()[1]))
                    print("received", flush=True)
        nursery.cancel_scope.cancel()


def agents_main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.ERROR)  # their moves between replicas are measured
    with tempfile.TemporaryDirectory() as tmp:
        found = credentials(args.cp_data_dir, args.agents, Path(tmp), tls=True)
        trio.run(run_agents, args.cp_url, found)
    return 0


@attrs.define
class Agents:
    """The agents' process, from the bench's side."""

    popen: subprocess.Popen[str]
    on_first: int = 0
    """Agents registered with the first URL (when they all were)."""
    sent: int = 0
    """Events sent to these agents so far (they count receipts across the bench)."""

    def line(self) -> str:
        """The process's next line, within :data:`TIMEOUT` (it says one per request)."""
        assert self.popen.stdout is not None
        readable, _, _ = select.select([self.popen.stdout], [], [], TIMEOUT)
        if not readable:
            raise TimeoutError(f"the agents' process said nothing within {TIMEOUT:g} s")
        said = self.popen.stdout.readline()
        if not said:
            raise RuntimeError(f"the agents' process ended ({self.popen.wait()})")
        return said.strip()

    def expect(self, more: int) -> None:
        """Ask to hear once ``more`` events than so far have been received."""
        assert self.popen.stdin is not None
        self.sent += more
        self.popen.stdin.write(f"expect {self.sent}\n")
        self.popen.stdin.flush()

    def received(self) -> None:
        """Until the answer to the last :meth:`expect`."""
        if (said := self.line()) != "received":
            raise RuntimeError(f"the agents said {said!r}")

    def settle(self) -> None:
        """Until every report of the agents is acknowledged."""
        assert self.popen.stdin is not None
        self.popen.stdin.write("settle\n")
        self.popen.stdin.flush()
        if (said := self.line()) != "settled":
            raise RuntimeError(f"the agents said {said!r}")


@contextmanager
def agents_process(urls: Sequence[str], cp_data_dir: Path, agents: int) -> Iterator[Agents]:
    """``agents`` agents dialling ``urls``, every one registered when this yields."""
    argv = [sys.executable, __file__, "--agents-process", "--cp-data-dir", str(cp_data_dir)]
    argv += ["--agents", str(agents), *(arg for url in urls for arg in ("--cp-url", url))]
    popen = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        made = Agents(popen)
        said, _, first = made.line().partition(" ")
        if said != "ready":
            raise RuntimeError(f"the agents did not all connect: {said!r}")
        made.on_first = int(first)
        yield made
    finally:
        popen.terminate()
        popen.wait(30)
        for pipe in (popen.stdin, popen.stdout):
            if pipe is not None:
                pipe.close()


# --- the bench's side -----------------------------------------------------------------------


@attrs.frozen
class Replica:
    process: Child
    api_url: str
    agent_url: str
    token: str
    data_dir: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def api(self) -> Api:
        return Api(self.api_url, self.token, self.data_dir)


@contextmanager
def replica(data_dir: Path, redis_url: str, *, keys_of: Replica | None = None) -> Iterator[Replica]:
    """A control plane on ``redis_url``; with ``keys_of``, that replica's CA and signing key."""
    if keys_of is not None:
        data_dir.mkdir(parents=True)
        for name in SHARED_KEYS:
            shutil.copy2(keys_of.data_dir / name, data_dir / name)
    with control_plane(data_dir, "--store", redis_url) as (process, api_url, agent_url, token):
        yield Replica(process, api_url, agent_url, token, data_dir)


def body(n: int, agents: int) -> dict[str, Any]:
    return {"target_agent": f"bench-{n % agents}", "payload": {"manifests": [MANIFEST]}}


def final(api: Api, event_id: str) -> dict[str, Any]:
    """The event's record once it has ended (within :data:`TIMEOUT`)."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        status, record = api.call("GET", f"/events/{event_id}?wait=30&since={FINAL_ONLY}")
        assert status == 200, record
        if record["state"] in ("completed", "failed", "expired"):
            return dict(record)
    raise TimeoutError(f"event {event_id} not final within {TIMEOUT:g} s")


@attrs.define
class Figures:
    """One case's figures, gathered over the rounds."""

    events: int = 0
    seconds: float = 0.0
    """Events posted for events/s, and the time from their first POST until the agents had
    them all."""
    latency: list[float] = attrs.field(factory=list)
    """Seconds from each timed POST until the answer that it completed."""
    steps: list[dict[str, float]] = attrs.field(factory=list)
    """Each timed event's seconds between its steps (bench/latency.py's)."""
    cpu: list[float] = attrs.field(factory=list)
    """CPU seconds each of the case's processes used for the events/s loads (until the
    reports were stored)."""

    def line(self, what: str) -> str:
        p50, p99 = percentile(self.latency, 50), percentile(self.latency, 99)
        gaps = " ".join(
            f"{name} {percentile([one[name] for one in self.steps if name in one], 50) * 1000:.1f}"
            for name in ("posted", *STEPS, "seen")
            if any(name in one for one in self.steps)
        )
        each = " + ".join(f"{used / self.events * 1e6:.0f}" for used in self.cpu)
        return (
            f"{what:<34} {self.events / self.seconds:6.0f} events/s   POST -> completed"
            f" p50 {p50 * 1000:6.1f} ms  p99 {p99 * 1000:6.1f} ms\n"
            f"{'':<34} p50 of each step (ms): {gaps}\n"
            f"{'':<34} CPU per event (us; control planes + redis-server): {each}"
        )


@attrs.define
class Case:
    """Events posted to ``post_to`` for the agents of ``agents``."""

    agents: Agents
    post_to: Replica
    args: argparse.Namespace
    pids: Sequence[int]
    """The processes whose CPU the case costs: its control planes and its redis-server."""
    figures: Figures = attrs.field(factory=Figures)

    def round(self, events: int, timed: int) -> None:
        """``events`` posted for events/s, then ``timed`` events one by one."""
        args, figures = self.args, self.figures
        self.agents.expect(events)
        cpu = [cpu_seconds(pid) for pid in self.pids]
        start = time.perf_counter()
        load(self.post_to.api_url, self.post_to.token, self.post_to.data_dir, events,
             args.agents, args.clients, args.batch)  # fmt: skip
        self.agents.received()
        figures.events += events
        figures.seconds += time.perf_counter() - start
        self.agents.settle()
        used = [cpu_seconds(pid) - before for pid, before in zip(self.pids, cpu, strict=True)]
        so_far = figures.cpu or [0.0] * len(used)
        figures.cpu = [mine + more for mine, more in zip(so_far, used, strict=True)]
        api = self.post_to.api()
        for n in range(timed):
            start = time.perf_counter()
            posted = time.time()
            status, answer = api.call("POST", "/events", body(n, args.agents))
            assert status == 202, answer
            record = final(api, answer["event_id"])
            assert record["state"] == "completed", record["message"]
            figures.latency.append(time.perf_counter() - start)
            figures.steps.append(steps_of(record, posted, time.time()))
        self.agents.sent += timed
        api.close()


def served_again(killed: Replica, survivor: Replica, agents: int) -> list[float]:
    """kill -9 of ``killed``, then one event per agent posted to ``survivor``: for each, the
    seconds from the kill until it completed (its timeline's ``completed`` entry)."""
    api = survivor.api()
    at = time.time()
    killed.process.kill()
    status, answer = api.call(
        "POST", "/events/batch", {"events": [body(n, agents) for n in range(agents)]}
    )
    assert status == 202, answer
    times = []
    for result in answer["results"]:
        record = final(api, result["event_id"])
        assert record["state"] == "completed", record["message"]
        (done,) = [e["at"] for e in record["timeline"] if e["state"] == "completed"]
        times.append(done - at)
    api.close()
    return times


def bench(args: argparse.Namespace, work: Path) -> None:
    """The three cases side by side (all running at once), measured in interleaved rounds so
    that whatever else the machine does weighs on each alike; then the kill."""
    with ExitStack() as stack:
        solo = stack.enter_context(running_redis(work / "redis-single"))
        single = stack.enter_context(replica(work / "single", solo.url))
        alone = stack.enter_context(
            agents_process([single.agent_url], single.data_dir, args.agents)
        )
        shared = stack.enter_context(running_redis(work / "redis-two"))
        one = stack.enter_context(replica(work / "one", shared.url))
        two = stack.enter_context(replica(work / "two", shared.url, keys_of=one))
        urls = [one.agent_url, two.agent_url]
        on_one = stack.enter_context(agents_process(urls, one.data_dir, args.agents))
        pids = (one.pid, two.pid, shared.child.pid)
        cases = {
            "one replica": Case(alone, single, args, (single.pid, solo.child.pid)),
            "two replicas, posted to replica 1": Case(on_one, one, args, pids),
            "two replicas, posted to replica 2": Case(on_one, two, args, pids),
        }
        for case in cases.values():
            case.round(args.events // 10, WARM_UP)
            case.figures = Figures()
        for n in range(args.rounds):
            for case in cases.values():
                case.round(share(args.events, args.rounds, n), share(args.latency, args.rounds, n))
        print(
            f"{on_one.on_first} of the {args.agents} agents registered with replica 1 (any other"
            " moved on to replica 2, not taken in by replica 1 in the storm of connections)",
            flush=True,
        )
        for what, case in cases.items():
            print(case.figures.line(what), flush=True)
        again = served_again(one, two, args.agents)
    single_p50 = percentile(cases["one replica"].figures.latency, 50)
    cross_p50 = percentile(cases["two replicas, posted to replica 2"].figures.latency, 50)
    added = (cross_p50 - single_p50) * 1000
    print(
        f"cross-replica adds {added:+.1f} ms at p50 to one replica's latency (target <= 5 ms):"
        f" {'met' if added <= 5 else 'NOT met'}"
    )
    print(
        f"replica 1 killed (-9): the {args.agents} agents served by replica 2 after"
        f" p50 {percentile(again, 50):.2f} s, max {max(again):.2f} s (an event posted to"
        " replica 2 for each, right after the kill, completed)"
    )


def share(total: int, rounds: int, n: int) -> int:
    """Round ``n``'s part of ``total`` split over ``rounds``."""
    return total // rounds + (n < total % rounds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--events", type=int, default=2000, help="events for events/s")
    parser.add_argument("--latency", type=int, default=200, help="events timed one by one")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--batch", type=int, default=100, help="events per POST /events/batch")
    parser.add_argument("--rounds", type=int, default=10, help="the cases take turns this often")
    parser.add_argument("--agents-process", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cp-url", action="append", help=argparse.SUPPRESS)
    parser.add_argument("--cp-data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.agents_process:
        return agents_main(args)
    bounds = (("agents", MAX_AGENTS), ("events", MAX_EVENTS), ("latency", MAX_LATENCY))
    for name, most in (*bounds, ("clients", 64), ("batch", 1000), ("rounds", 100)):
        if not 1 <= getattr(args, name) <= most:
            parser.error(f"--{name}: from 1 to {most}")
    if args.agents > HANDSHAKES.per_address:
        print(
            f"note: more agents than the {HANDSHAKES.per_address} handshakes one address may have"
            " under way: some are cut short at each storm (start, kill) and move on",
            flush=True,
        )
    with tempfile.TemporaryDirectory() as tmp:
        print(
            f"{args.agents} agents (bench/agents.py: real sessions over mutual TLS, instant"
            f" apply) on replica 1; {args.events} events in batches of {args.batch} from"
            f" {args.clients} clients; latency of {args.latency} events one by one",
            flush=True,
        )
        bench(args, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
