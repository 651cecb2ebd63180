"""The single file's agent (``make binary``) proves who it is with what operators give it
beside a client certificate: a ServiceAccount's bearer token, and an exec credential plugin
whose token expires and is fetched again. It reaches the API server and applies an event."""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import trio

from tests.bed.accounts import Plugin, account_token, make_cluster_admin, with_user
from tests.bed.kube import Cluster
from tests.bed.process import started
from tests.bed.roles import AGENT_LISTENING, REGISTERED, create_bundle, running_cp

CONNECTED = re.compile(r"cluster \S+: Kubernetes (v\d+\.\d+\.\S+)")


def _admin_token(cluster: Cluster, name: str) -> str:
    async def made() -> str:
        token = await account_token(cluster, name)
        await make_cluster_admin(cluster, name)
        return token

    return trio.run(made)


def _run_agent_and_apply(binary: Path, kubeconfig: Path, tmp_path: Path) -> dict[str, Any]:
    """Start the file's control plane and agent (on ``kubeconfig``), and submit one ConfigMap;
    what ``produce --wait -o json`` said."""
    name = f"binary-auth-{uuid.uuid4().hex[:10]}"
    manifest = tmp_path / "cm.yaml"
    manifest.write_text(f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\n")
    data = tmp_path / "cp"
    with running_cp(data, command=[str(binary)]) as cp:
        found = AGENT_LISTENING.search(cp.output)
        assert found is not None, cp.output
        bundle = create_bundle(data, "site-1", tmp_path / "bundle", command=[str(binary)])
        agent_argv = [
            str(binary),
            "agent",
            "--bundle",
            str(bundle),
            "--cp-url",
            found.group(1),
            "--kubeconfig",
            str(kubeconfig),
        ]
        with started(agent_argv, CONNECTED, REGISTERED, timeout=60) as (agent, (version, _)):
            assert version.startswith("v1.")
            time.sleep(3)  # past the exec plugin's first token (2 s)
            done = cp.produce_and_wait("site-1", manifest)
            assert done.returncode == 0, done.stderr + agent.output
        assert "Traceback" not in agent.output
    shown: dict[str, Any] = json.loads(done.stdout)
    assert shown["state"] == "completed", shown
    return shown


def test_the_binarys_agent_with_a_bearer_token(
    binary: Path, cluster: Cluster, tmp_path: Path
) -> None:
    token = _admin_token(cluster, f"binary-{uuid.uuid4().hex[:8]}")
    kubeconfig = with_user(cluster, {"token": token}, tmp_path / "token.kubeconfig")
    _run_agent_and_apply(binary, kubeconfig, tmp_path)


def test_the_binarys_agent_with_an_exec_plugin(
    binary: Path, cluster: Cluster, tmp_path: Path
) -> None:
    plugin = Plugin(tmp_path / "plugin")
    plugin.plan(token=_admin_token(cluster, f"binary-exec-{uuid.uuid4().hex[:8]}"), lifetime=2)
    entry = plugin.exec_entry()
    kubeconfig = with_user(cluster, {"exec": entry}, tmp_path / "exec.kubeconfig")
    _run_agent_and_apply(binary, kubeconfig, tmp_path)
    assert len(plugin.requests) >= 2  # the token expired while the agent ran: fetched again
