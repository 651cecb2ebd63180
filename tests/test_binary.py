"""The single-file build (``make binary``) runs on its own: ``--version``, a serving ``cp``, and
an event applied by its agent on the test bed's cluster."""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.request
import uuid
from pathlib import Path

from tests.bed.accounts import EXEC_V1, with_user
from tests.bed.kube import Cluster
from tests.bed.process import started
from tests.bed.roles import (
    AGENT_LISTENING,
    REGISTERED,
    clean_environment,
    create_bundle,
    running_cp,
)
from transporter import __version__
from transporter.agent.bundle import load_bundle


def test_the_binary_answers_version(binary: Path) -> None:
    # A clean environment: the file must not lean on the venv or on PYTHONPATH.
    done = subprocess.run(
        [str(binary), "--version"], capture_output=True, text=True, env={}, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout.startswith(f"transporter {__version__} (commit ")
        and ", built unknown" not in done.stdout
        and done.stdout.endswith(", linux/x86_64)\n")
        and ", Python 3.13." in done.stdout
    ), done.stdout


def test_the_binary_serves_healthz_and_stops_on_sigterm(binary: Path, tmp_path: Path) -> None:
    with running_cp(tmp_path, command=[str(binary)]) as cp:
        with urllib.request.urlopen(
            f"{cp.api_url}/healthz", timeout=10, context=cp.api_context
        ) as answer:
            assert answer.status == 200
        assert cp.stop(signal.SIGTERM) == 0
    assert "Traceback" not in cp.output


def test_the_binary_makes_its_ca_and_issues_a_bundle(binary: Path, tmp_path: Path) -> None:
    """The secure default works from the one file: CA and keys (cryptography) at the first
    start, and ``bundle create`` from them."""
    data = tmp_path / "cp"
    with running_cp(data, command=[str(binary)]) as cp:
        assert "agent channel listening on wss://" in cp.output
        flags = ["--agent-id", "site-1", "--data-dir", str(data), "--out", str(tmp_path / "b")]
        done = subprocess.run(
            [str(binary), "bundle", "create", *flags],
            capture_output=True,
            text=True,
            env={},
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    assert load_bundle(tmp_path / "b").agent_id == "site-1"


def test_the_binarys_agent_applies_an_event(binary: Path, cluster: Cluster, tmp_path: Path) -> None:
    """The agent of the one file reaches the API server through our own HTTP client
    (kube/client.py, on http.client) and applies an event end to end."""
    name = f"binary-{uuid.uuid4().hex[:10]}"
    manifest = tmp_path / "cm.yaml"
    manifest.write_text(
        f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{k: v}}\n"
    )
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
            str(cluster.kubeconfig),
        ]
        with started(agent_argv, REGISTERED, timeout=60) as (agent, _):
            done = cp.produce_and_wait("site-1", manifest)
            assert done.returncode == 0, done.stderr + agent.output
        assert "Traceback" not in agent.output
    shown = json.loads(done.stdout)
    assert shown["state"] == "completed"
    assert [(r["kind"], r["name"], r["status"]) for r in shown["resources"]] == [
        ("ConfigMap", name, "created")
    ]


def test_the_binarys_exec_plugin_gets_the_users_environment(
    binary: Path, cluster: Cluster, tmp_path: Path
) -> None:
    """The programs the file's agent starts (a kubeconfig's exec plugin) run with the user's
    LD_LIBRARY_PATH, not the unpacked folder's glibc, and see none of the launcher's
    variables: a host program would not load with another glibc than its own."""
    seen = tmp_path / "plugin-env"
    credential = tmp_path / "credential.json"
    credential.write_text(
        json.dumps(
            {
                "apiVersion": EXEC_V1,
                "kind": "ExecCredential",
                "status": {
                    "clientCertificateData": cluster.certs.admin_cert.read_text(),
                    "clientKeyData": cluster.certs.admin_key.read_text(),
                },
            }
        )
    )
    plugin = tmp_path / "plugin"
    plugin.write_text(f"#!/bin/sh\nenv > {seen}\nexec cat {credential}\n")
    plugin.chmod(0o755)
    exec_entry = {"command": str(plugin), "apiVersion": EXEC_V1, "interactiveMode": "Never"}
    kubeconfig = with_user(cluster, {"exec": exec_entry}, tmp_path / "kubeconfig")
    manifest = tmp_path / "cm.yaml"
    manifest.write_text(f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {uuid.uuid4()}}}\n")
    data = tmp_path / "cp"
    with running_cp(data, command=[str(binary)]) as cp:
        found = AGENT_LISTENING.search(cp.output)
        assert found is not None, cp.output
        bundle = create_bundle(data, "site-1", tmp_path / "bundle", command=[str(binary)])
        agent_argv = [str(binary), "agent", "--bundle", str(bundle), "--cp-url", found.group(1)]
        agent_argv += ["--kubeconfig", str(kubeconfig)]
        env = clean_environment() | {"LD_LIBRARY_PATH": "/the/users/own"}
        with started(agent_argv, REGISTERED, env=env, timeout=60) as (agent, _):
            done = cp.produce_and_wait("site-1", manifest)
            assert done.returncode == 0, done.stderr + agent.output
    variables = dict(line.split("=", 1) for line in seen.read_text().splitlines() if "=" in line)
    assert variables["LD_LIBRARY_PATH"] == "/the/users/own"
    assert [name for name in variables if name.startswith("TRANSPORTER_LAUNCHER")] == []
    # Nor PyInstaller's bootloader's (its archive, process level, process name).
    assert [name for name in variables if name.startswith("_PYI_")] == []
