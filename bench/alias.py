"""YAML aliases as an attacker writes them: what refusing them costs, and what the largest event
the bounds accept costs the control plane and the agent.

- Submission of one 1 MB string aliased 2,000 times (2 GB once expanded): refused, time and
  peak memory of the check (in this process, the control plane's code).
- A large accepted shape, 1 MB aliased 6 times (7 MB expanded): time and peak memory of the
  submission check, of the agent's parse (its validating phase), and the size of the manifest as
  the API shows it (a Secret, redacted).
- A real control plane holding that Secret event: the size of ``GET /events/{id}`` and the
  control plane's RSS before and after 20 such answers.

    .venv/bin/python bench/alias.py
"""

from __future__ import annotations

import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Api, control_plane, rss_kib
from transporter.kube.manifests import parse_manifests
from transporter.protocol.submission import InvalidEvent, parse_submission
from transporter.security.redact import redact_manifest

MB = 1024 * 1024


def aliased(size: int, uses: int) -> str:
    """A Secret with a ``size``-character label value anchored once and aliased ``uses``
    times."""
    aliases = ", ".join(["*big"] * uses)
    return (
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: aliased\n  namespace: default\n"
        f"  annotations: {{big: &big {'x' * size}}}\nstringData: {{pw: s3cret-value}}\n"
        f"type: Opaque\ndata: {{}}\nimmutable: false\nextra: [{aliases}]\n"
    )


def measured(work: Callable[[], Any]) -> tuple[float, float, Any]:
    """Seconds, peak MiB (tracemalloc) and the result (or the exception raised)."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        result: Any = work()
    except Exception as exc:
        result = exc
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return elapsed, peak / MB, result


def body(manifest: str) -> dict[str, Any]:
    return {"target_agent": "bench", "payload": {"manifests": [manifest]}}


def main() -> None:
    bomb = aliased(MB, 2000)
    took, peak, result = measured(
        lambda: parse_submission(body(bomb), now=0.0, new_id=lambda: "bomb")
    )
    assert isinstance(result, InvalidEvent), result
    print(
        f"submission, 1 MB aliased 2,000 times ({len(bomb) / MB:.1f} MB sent, 2 GB expanded):"
        f" refused in {took * 1000:.0f} ms, peak {peak:.1f} MiB: {result.problem}"
    )
    largest = aliased(MB, 6)
    took, peak, event = measured(
        lambda: parse_submission(body(largest), now=0.0, new_id=lambda: "a")
    )
    assert not isinstance(event, Exception), event
    print(f"submission, 1 MB aliased 6 times (accepted): {took * 1000:.0f} ms, peak {peak:.1f} MiB")
    took, peak, objects = measured(lambda: parse_manifests([largest]))
    assert not isinstance(objects, Exception), objects
    print(f"agent's parse of it: {took * 1000:.0f} ms, peak {peak:.1f} MiB ({len(objects)} object)")
    took, peak, (shown, _) = measured(lambda: redact_manifest(largest))
    print(
        f"shown redacted: {len(shown) / MB:.2f} MB for {len(largest) / MB:.2f} MB sent,"
        f" {took * 1000:.0f} ms, peak {peak:.1f} MiB"
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with control_plane(work / "cp", "--insecure-plain-ws") as (cp, api_url, _, token):
            api = Api(api_url, token, work / "cp")
            status, answer = api.call("POST", "/events", body(largest))
            assert status == 202, answer
            event_id = answer["event_id"]
            before = rss_kib(cp.pid)
            sizes = []
            for _ in range(20):
                api.connection.request("GET", f"/events/{event_id}", headers=api.headers)
                response = api.connection.getresponse()
                sizes.append(len(response.read()))
            after = rss_kib(cp.pid)
            api.close()
    print(
        f"GET /events/{{id}} of it, 20 times: {max(sizes) / MB:.2f} MB each; control plane RSS"
        f" {before / 1024:.1f} -> {after / 1024:.1f} MiB"
    )


if __name__ == "__main__":
    main()
