"""Latency: POST /events → ``completed`` for one ConfigMap, through a real API server, beside a
direct server-side apply of the same object from Python.

    .venv/bin/python bench/latency.py [--events 200]

The control plane and the agent are real processes (embedded store); the cluster is the test
bed's. Each event changes the ConfigMap's data, so every apply is a real update; so is every
direct apply. Targets (issue 3): p50 no worse than 1.5 x the direct apply, p99 <= 150 ms.
"""

from __future__ import annotations

import argparse
import itertools
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kubernetes import config as k8s_config
from kubernetes import dynamic

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.bed.kube import running_cluster

from bench.common import (
    TRANSPORTER,
    Api,
    control_plane,
    create_bundle,
    percentile,
    started,
    wait_for_agents,
)


def configmap(name: str, n: int) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"},
        "data": {"n": str(n)},
    }


def yaml_of(name: str, n: int) -> str:
    return (
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: default\n"
        f'data:\n  n: "{n}"\n'
    )


def direct(kubeconfig: Path, events: int) -> list[float]:
    api = k8s_config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    client = dynamic.DynamicClient(api)  # type: ignore[no-untyped-call]
    configmaps = client.resources.get(api_version="v1", kind="ConfigMap")
    times = []
    for n in range(events + 10):
        start = time.perf_counter()
        configmaps.server_side_apply(
            body=configmap("direct", n),
            namespace="default",
            field_manager="bench",
            force_conflicts=True,
        )
        if n >= 10:  # warm-up
            times.append(time.perf_counter() - start)
    api.close()
    return times


STEPS = ("assigned", "received", "validating", "applying", "verifying", "completed")


def steps_of(record: dict[str, Any], posted: float, seen: float) -> dict[str, float]:
    """Seconds between one event's steps: acceptance (``created_at``), each timeline entry
    named in :data:`STEPS`, and the answer that showed it completed (wall clock, one host)."""
    marks = [("accepted", record["event"]["created_at"])]
    for entry in record["timeline"]:
        name = entry["phase"] or entry["state"]
        if name in STEPS and name not in dict(marks):
            marks.append((name, entry["at"]))
    marks.append(("seen", seen))
    gaps = {"posted": marks[0][1] - posted}
    for (_, before), (name, at) in itertools.pairwise(marks):
        gaps[name] = at - before
    return gaps


FINAL_ONLY = 1_000_000
"""``since`` beyond any timeline: the answer waits until the event is final."""


def through_transporter(
    api: Api, events: int, *, follow: bool
) -> tuple[list[float], list[dict[str, float]]]:
    """POST each event, then wait for its outcome: answered at every change of its timeline
    when ``follow`` (as ``produce --wait`` shows the phases), else once it is final."""
    times = []
    steps = []
    for n in range(events + 10):
        start = time.perf_counter()
        posted = time.time()
        status, body = api.call(
            "POST",
            "/events",
            {"target_agent": "bench", "payload": {"manifests": [yaml_of("via-transporter", n)]}},
        )
        assert status == 202, body
        event_id = body["event_id"]
        seen = 0
        while True:
            since = seen if follow else FINAL_ONLY
            _, record = api.call("GET", f"/events/{event_id}?wait=30&since={since}")
            seen = len(record["timeline"])
            if record["state"] in ("completed", "failed", "expired"):
                break
        assert record["state"] == "completed", record["message"]
        if n >= 10:
            times.append(time.perf_counter() - start)
            steps.append(steps_of(record, posted, time.time()))
    return times, steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with running_cluster("bench", work / "cluster") as cluster:
            direct_times = direct(cluster.kubeconfig, args.events)
            with control_plane(work / "cp") as (_, api_url, agent_url, token):
                agent_argv = [
                    *TRANSPORTER,
                    "agent",
                    "--bundle",
                    str(create_bundle(work / "cp", "bench", work / "bundle")),
                    "--cp-url",
                    agent_url,
                    "--kubeconfig",
                    str(cluster.kubeconfig),
                ]
                with started(agent_argv, re.compile(r"(registered) with")):
                    api = Api(api_url, token, work / "cp")
                    wait_for_agents(api, 1)
                    waited = {
                        follow: through_transporter(api, args.events, follow=follow)
                        for follow in (False, True)
                    }
                    api.close()
    d50, d99 = percentile(direct_times, 50), percentile(direct_times, 99)
    print(f"events            {args.events} (after 10 warm-up)")
    print(f"direct SSA        p50 {d50 * 1000:7.1f} ms   p99 {d99 * 1000:7.1f} ms")
    for follow, (times, steps) in waited.items():
        t50, t99 = percentile(times, 50), percentile(times, 99)
        how = "every phase answered (produce --wait)" if follow else "the outcome only"
        print(f"POST -> completed, the client waiting for {how}:")
        print(f"  p50 {t50 * 1000:7.1f} ms   p99 {t99 * 1000:7.1f} ms")
        print("  p50 of each step (ms):")
        for name in ("posted", *STEPS, "seen"):
            gaps = [one[name] for one in steps if name in one]
            if gaps:
                print(f"    -> {name:<11} {percentile(gaps, 50) * 1000:6.1f}")
        print(f"  ratio p50 {t50 / d50:.2f} x direct (target <= 1.5)")
        print(f"  target p99 <= 150 ms: {'met' if t99 <= 0.150 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
