"""Half-open connection: how long a real control plane and a real agent take to notice that
their connection died without a FIN, at the default heartbeat settings.

    .venv/bin/python bench/halfopen.py [--timeout 120]

The control plane and the agent are real processes (embedded store, TLS, a test-bed cluster);
the agent dials through the test bed's fault proxy (``tests/bed/faultproxy.py``). Once the agent
is registered, the proxy drops the connection silently: bytes are thrown away, no FIN, no RST,
as when a NAT forgets the flow. As soon as the connection has lost a byte the proxy lets new
connections through again, while the old one stays dead for good: so the agent can reconnect as
soon as it has noticed. An event submitted during the outage shows that nothing is lost.

Figures, in seconds from the moment the connection went silent: when the control plane marked
the agent ``unhealthy`` and ``disconnected`` (polling ``GET /agents/{id}``), when the agent said
``reconnecting`` and ``reconnected`` (its log), when it dialled again (the proxy's count), and
when the event submitted meanwhile completed. Target: both ends notice within 30 s.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import attrs
import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.bed.faultproxy import Counts, FaultProxy
from tests.bed.kube import running_cluster

from bench.common import TRANSPORTER, Api, control_plane, create_bundle, started, wait_for_agents

AGENT = "halfopen"
TARGET = 30.0
POLL = 0.05


class ProxyThread:
    """The fault proxy on a trio loop of its own, in a thread, for a benchmark that is not."""

    def __init__(self, upstream_url: str) -> None:
        self.proxy = FaultProxy.to_url(upstream_url)
        self._ready = threading.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._scope: trio.CancelScope | None = None
        self._thread = threading.Thread(target=trio.run, args=(self._main,), daemon=True)

    async def _main(self) -> None:
        with trio.CancelScope() as scope:
            self._scope = scope
            async with trio.open_nursery() as nursery:
                await nursery.start(self.proxy.serve)
                self._token = trio.lowlevel.current_trio_token()
                self._ready.set()

    def __enter__(self) -> ProxyThread:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the fault proxy did not start")
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._scope is not None:
            self.run_sync(self._scope.cancel)
        self._thread.join(10)

    def run_sync(self, function: Callable[..., Any], *args: Any) -> Any:
        """``function(*args)`` on the proxy's loop."""
        return trio.from_thread.run_sync(function, *args, trio_token=self._token)

    def counts(self) -> Counts:
        counts: Counts = self.run_sync(attrs.evolve, self.proxy.counts)
        return counts

    def wait_until(self, predicate: Callable[[Counts], bool], timeout: float) -> None:
        async def wait() -> None:
            with trio.fail_after(timeout):
                await self.proxy.wait_until(predicate)

        trio.from_thread.run(wait, trio_token=self._token)


def configmap_yaml(name: str) -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: default\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--timeout", type=float, default=120.0, help="give up after (seconds)")
    args = parser.parse_args()
    seen: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with (
            running_cluster("bench", work / "cluster") as cluster,
            control_plane(work / "cp") as (_, api_url, agent_url, token),
            ProxyThread(agent_url) as faulty,
        ):
            agent_argv = [
                *TRANSPORTER,
                "agent",
                "--bundle",
                str(create_bundle(work / "cp", AGENT, work / "bundle")),
                "--cp-url",
                faulty.proxy.url(agent_url),
                "--kubeconfig",
                str(cluster.kubeconfig),
            ]
            with started(agent_argv, re.compile(r"(registered) with")) as (agent, _):
                api = Api(api_url, token, work / "cp")
                wait_for_agents(api, 1)
                accepted = faulty.counts().accepted
                start = time.monotonic()
                faulty.run_sync(faulty.proxy.drop)
                # The next heartbeat is thrown away: from then on the connection is dead for
                # good, and new connections may pass again.
                faulty.wait_until(lambda c: c.discarded > 0, timeout=30)
                faulty.run_sync(faulty.proxy.pass_through)
                seen["connection lost a byte"] = time.monotonic() - start
                status, body = api.call(
                    "POST",
                    "/events",
                    {"target_agent": AGENT, "payload": {"manifests": [configmap_yaml("halfopen")]}},
                )
                assert status == 202, body
                event_id = body["event_id"]
                seen["event submitted"] = time.monotonic() - start
                watch(api, agent.lines, faulty, accepted, event_id, start, seen, args.timeout)
                api.close()
    report(seen)
    return 0 if _met(seen) else 1


def watch(
    api: Api,
    lines: list[str],
    faulty: ProxyThread,
    accepted: int,
    event_id: str,
    start: float,
    seen: dict[str, float],
    timeout: float,
) -> None:
    """Record when each end noticed, until the agent is back and the event completed."""
    read = 0
    wanted = {
        "cp: unhealthy",
        "cp: disconnected",
        "cp: connected again",
        "agent: reconnecting",
        "agent: dialled again",
        "agent: reconnected",
        "event completed",
    }
    while not wanted <= seen.keys():
        now = time.monotonic() - start
        if now > timeout:
            missing = ", ".join(sorted(wanted - seen.keys()))
            print(f"gave up after {timeout:g} s; not seen: {missing}")
            for line in lines[-20:]:
                print("  agent:", line.rstrip())
            return
        _, record = api.call("GET", f"/agents/{AGENT}")
        status = record["status"]
        if status in ("unhealthy", "disconnected"):
            seen.setdefault(f"cp: {status}", now)
        elif status == "connected" and "cp: disconnected" in seen:
            seen.setdefault("cp: connected again", now)
        for line in lines[read:]:
            if "reconnecting" in line:
                seen.setdefault("agent: reconnecting", now)
                print("  agent:", line.rstrip())
            elif "reconnected" in line:
                seen.setdefault("agent: reconnected", now)
                print("  agent:", line.rstrip())
        read = len(lines)
        if faulty.counts().accepted > accepted:
            seen.setdefault("agent: dialled again", now)
        if "event completed" not in seen:
            _, event = api.call("GET", f"/events/{event_id}")
            if event["state"] in ("completed", "failed", "expired"):
                assert event["state"] == "completed", event["message"]
                seen["event completed"] = now
        time.sleep(POLL)


def report(seen: dict[str, float]) -> None:
    print("seconds after the connection went silent (default heartbeats: every 5 s, dead at 20 s)")
    for what, at in sorted(seen.items(), key=lambda item: item[1]):
        print(f"  {what:<26} {at:6.1f}")
    for what in ("cp: disconnected", "agent: reconnected"):
        when = seen.get(what)
        verdict = "not seen" if when is None else ("met" if when <= TARGET else "NOT met")
        print(f"target {what} <= {TARGET:g} s: {verdict}")


def _met(seen: dict[str, float]) -> bool:
    return all(
        seen.get(what, TARGET + 1) <= TARGET for what in ("cp: disconnected", "agent: reconnected")
    )


if __name__ == "__main__":
    sys.exit(main())
