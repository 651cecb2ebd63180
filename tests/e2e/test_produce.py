"""``transporter produce``, run as users run it: exit codes, live phases, queries."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from tests.bed.kube import Cluster
from tests.e2e.harness import Agent, ControlPlane
from tests.e2e.test_flow import configmap_yaml, unique

pytestmark = pytest.mark.kube


async def produce(cp: ControlPlane, *args: str) -> subprocess.CompletedProcess[bytes]:
    assert cp.bound is not None
    return await trio.run_process(
        [sys.executable, "-m", "transporter", "produce", *args, "--cp-url", cp.bound.api_url],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


async def test_exit_codes_and_output(
    cp: ControlPlane, make_agent: Callable[..., Agent], cluster: Cluster, tmp_path: Path
) -> None:
    agent = make_agent(cluster)
    await agent.start(cp.agent_url)
    good = write(tmp_path, "good.yaml", configmap_yaml(unique("cm"), None, a="1"))
    done = await produce(cp, "k8s", "--agent", agent.agent_id, "--manifest", str(good), "--wait")
    out = done.stdout.decode()
    assert done.returncode == 0, done.stderr.decode()
    for word in (
        "accepted",
        "received",
        "validating",
        "applying",
        "verifying",
        "completed",
        "created",
    ):
        assert word in out

    bad = write(
        tmp_path, "bad.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: BAD_NAME\n"
    )
    failed = await produce(
        cp, "k8s", "--agent", agent.agent_id, "--manifest", str(bad), "--wait", "-o", "json"
    )
    assert failed.returncode == 1
    result = json.loads(failed.stdout)
    assert result["state"] == "failed"
    assert "BAD_NAME" in result["resources"][0]["message"]  # the API server's own words

    missing = await produce(
        cp, "k8s", "--agent", agent.agent_id, "--manifest", str(tmp_path / "nope.yaml")
    )
    assert missing.returncode == 2
    assert b"no such file" in missing.stderr

    invalid = write(tmp_path, "invalid.yaml", "kind: [")
    refused = await produce(cp, "k8s", "--agent", agent.agent_id, "--manifest", str(invalid))
    assert refused.returncode == 2
    assert b"not valid YAML" in refused.stderr

    offline = await produce(
        cp, "k8s", "--agent", "nobody-home", "--manifest", str(good), "--wait", "--timeout", "1"
    )
    assert offline.returncode == 1
    assert b"never registered" in offline.stdout
    assert b"not finished after 1 s" in offline.stdout

    events = await produce(cp, "get", "events", "-o", "json")
    assert events.returncode == 0
    assert len(json.loads(events.stdout)) == 3
    agents = await produce(cp, "get", "agents")
    assert agents.returncode == 0
    assert agent.agent_id in agents.stdout.decode()
    assert "connected" in agents.stdout.decode()
    first_id = json.loads(events.stdout)[-1]["event"]["id"]
    one = await produce(cp, "get", "event", first_id)
    assert one.returncode == 0
    assert "timeline" in one.stdout.decode()
