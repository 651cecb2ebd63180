"""What a running agent loads: it checks its certificate and every event's signature without
``cryptography`` (and its cffi), which the control plane alone needs; in the single file these
stay packed (and off the agent's memory) for ``transporter agent``. What only an event needs
is imported when the first comes, not by an idle agent."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.bed.kube import Cluster
from tests.bed.manifests import configmap, unique
from tests.bed.process import started
from tests.bed.roles import (
    AGENT_LISTENING,
    REGISTERED,
    clean_environment,
    create_bundle,
    running_cp,
)

NEVER = ("cryptography", "_cffi_backend", "cffi")
"""Packages the agent must not import (``-X importtime`` names every module as it loads)."""
EVENT_ONLY = (
    "transporter.kube.manifests",
    "transporter.kube.validate",
    "transporter.kube.discovery",
    "transporter.kube.apply",
    "transporter.agent.policy.grants",
)
"""Modules an idle agent does without: an event's steps (parsing, validating, the policy's
judgement of what RBAC grants, applying) import them."""
POD_ONLY = "transporter.agent.policy.podchecks"
"""The Pod Security checks: imported with the first pod to check (a ConfigMap runs none)."""


def imported(lines: list[str]) -> set[str]:
    """The modules ``python -X importtime`` reported loading."""
    return {
        line.rsplit("|", 1)[1].strip()
        for line in lines
        if line.startswith("import time:") and line.count("|") == 2
    }


def test_a_connected_agent_that_ran_an_event_has_no_cryptography(
    cluster: Cluster, tmp_path: Path
) -> None:
    manifest = tmp_path / "cm.yaml"
    manifest.write_text(configmap(unique("footprint")))
    data = tmp_path / "cp"
    with running_cp(data) as cp:
        found = AGENT_LISTENING.search(cp.output)
        assert found is not None, cp.output
        bundle = create_bundle(data, "lean-site", tmp_path / "bundle")
        argv = [sys.executable, "-X", "importtime", "-m", "transporter", "agent"]
        argv += ["--bundle", str(bundle), "--cp-url", found.group(1)]
        argv += ["--kubeconfig", str(cluster.kubeconfig)]
        with started(argv, REGISTERED, env=clean_environment()) as (agent, _):
            idle = imported(agent.lines)
            done = cp.produce_and_wait("lean-site", manifest)
            assert done.returncode == 0, done.stdout + done.stderr
            assert json.loads(done.stdout)["state"] == "completed"
            assert agent.stop() == 0
    modules = imported(agent.lines)
    assert [name for name in (*EVENT_ONLY, POD_ONLY) if name in idle] == []
    assert [name for name in EVENT_ONLY if name not in modules] == []  # the event needed them
    assert POD_ONLY not in modules
    # The report is read right: the agent's own modules and TLS are in it.
    assert {"ssl", "transporter.agent.session", "transporter.security.ed25519"} <= modules
    assert (
        sorted(
            name for name in modules if any(name == x or name.startswith(x + ".") for x in NEVER)
        )
        == []
    )
