"""A plan over three real clusters: time from ``POST /plans`` to the full per-cluster diff.

    .venv/bin/python bench/plan.py [--objects 30] [--runs 5]

Three test-bed clusters (kube-apiserver + etcd each), one real ``transporter agent`` process on
each, a control plane on the embedded store. Each cluster first holds the objects in an older
version (ConfigMaps and a Secret with other data, labels changed, a Deployment with another
image and replica count, some objects absent), so that a plan finds changes to diff, objects to
create and objects unchanged. Then each run posts ``POST /plans`` over the three agents and
reads ``GET /plans/{id}`` until every cluster's results are in; the figure is that time (p50 and
max of the runs), with how many results and diff lines it held.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.bed.kube import running_cluster

from bench.common import TRANSPORTER, Api, control_plane, create_bundle, percentile, started

CLUSTERS = 3
POLL = 0.02


def manifests(objects: int, version: int) -> list[str]:
    """``objects`` objects in namespace ``plan-bench``: in version 0 every fourth is left out
    (so the plan creates it), the rest hold other values (so it changes them)."""
    docs = ["apiVersion: v1\nkind: Namespace\nmetadata:\n  name: plan-bench\n"]
    for n in range(objects):
        if version == 0 and n % 4 == 3:
            continue
        value = f"v{version}" if n % 4 != 2 else "same"  # every fourth stays as it is
        docs.append(
            f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{n}\n  namespace: plan-bench\n"
            f"  labels:\n    version: {value}\ndata:\n  key: {value}\n  other: x{n}\n"
        )
    docs.append(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\n  namespace: plan-bench\n"
        f"stringData:\n  password: secret-{version}\n"
    )
    docs.append(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: plan-bench\n"
        f"spec:\n  replicas: {1 + version}\n  selector:\n    matchLabels: {{app: web}}\n"
        "  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n"
        f"      - name: web\n        image: example.org/web:{version}\n"
    )
    return ["---\n".join(docs)]


def wait_final(api: Api, path: str) -> dict[str, Any]:
    while True:
        status, view = api.call("GET", path)
        assert status == 200, view
        if view["state"] in ("completed", "failed", "cancelled"):
            return dict(view)
        time.sleep(POLL)


def run_plan(api: Api, agents: list[str], objects: int) -> tuple[float, int, int]:
    start = time.perf_counter()
    body = {"target_agents": agents, "payload": {"manifests": manifests(objects, 1)}}
    status, answer = api.call("POST", "/plans", body)
    assert status == 202, answer
    view = wait_final(api, f"/plans/{answer['plan_id']}")
    elapsed = time.perf_counter() - start
    assert view["state"] == "completed", view["message"]
    results = [r for cluster in view["clusters"] for r in cluster["resources"]]
    diffs = sum(len(r.get("diff", ())) for r in results)
    assert "secret-1" not in repr(view), "a Secret leaked"
    assert "secret-0" not in repr(view), "a Secret leaked"
    return elapsed, len(results), diffs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--objects", type=int, default=30)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    agents = [f"plan-{n}" for n in range(CLUSTERS)]
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        clusters = [
            stack.enter_context(running_cluster(f"plan{n}", work / f"cluster{n}"))
            for n in range(CLUSTERS)
        ]
        _, api_url, agent_url, token = stack.enter_context(control_plane(work / "cp"))
        for agent, cluster in zip(agents, clusters, strict=True):
            bundle = create_bundle(work / "cp", agent, work / f"bundle-{agent}")
            argv = [*TRANSPORTER, "agent", "--bundle", str(bundle), "--cp-url", agent_url]
            argv += ["--kubeconfig", str(cluster.kubeconfig)]
            stack.enter_context(started(argv, re.compile(r"(registered) with")))
        api = Api(api_url, token, work / "cp")
        body = {"target_agents": agents, "payload": {"manifests": manifests(args.objects, 0)}}
        status, answer = api.call("POST", "/events", body)
        assert status == 202, answer
        first = wait_final(api, f"/rollouts/{answer['rollout_id']}")
        assert first["state"] == "completed", first["message"]
        times = []
        for _ in range(args.runs):
            elapsed, results, diffs = run_plan(api, agents, args.objects)
            times.append(elapsed)
        api.close()
    print(
        f"plan over {CLUSTERS} clusters, {results} results ({results // CLUSTERS} objects each),"
        f" {diffs} diff lines: POST -> full diff p50 {percentile(times, 50) * 1000:.0f} ms,"
        f" max {max(times) * 1000:.0f} ms over {args.runs} runs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
