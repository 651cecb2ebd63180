"""Our HTTP client of the API server (kube/client.py): what it loads, and how it trusts the
server. Its connections are in test_keepalive.py, its proxies in test_proxy.py."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bed.accounts import Plugin, certificate_data, connected, with_user
from tests.bed.kube import Cluster
from tests.bed.unpacked import module_names, unpack
from transporter.kube import KubeUnavailable
from transporter.kube.retry import NO_RETRY

REPO = Path(__file__).resolve().parents[2]


def excluded_from_the_single_file() -> list[str]:
    """``EXCLUDES`` of transporter.spec, read without running it."""
    tree = ast.parse((REPO / "transporter.spec").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "EXCLUDES" for target in node.targets
        ):
            excludes: list[str] = ast.literal_eval(node.value)
            return excludes
    raise AssertionError("transporter.spec has no EXCLUDES list")


AGENT_RUN = """
import json, pkgutil, sys
from pathlib import Path
import trio
import transporter
from transporter.kube import KubeTarget

for found in pkgutil.walk_packages(transporter.__path__, "transporter."):
    if not found.name.endswith("__main__"):
        __import__(found.name)

async def main():
    async with KubeTarget.connect(Path(sys.argv[1])) as target:
        plan = await target.plan(["apiVersion: v1\\nkind: ConfigMap\\nmetadata: {name: probe}\\n"])
        await target.dry_run(plan.objects[0])

trio.run(main)
excluded = json.loads(sys.argv[2])
print(json.dumps(sorted(
    name for name in sys.modules
    if any(name == x or name.startswith(x + ".") for x in excluded)
)))
"""


def test_the_agent_loads_nothing_the_single_file_leaves_out(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Every module of ours imported, then an agent's connection with an exec plugin's client
    certificate: neither the official client, nor urllib3, nor anything else
    ``transporter.spec`` excludes is loaded, so the file has all it needs."""
    excluded = excluded_from_the_single_file()
    assert {"kubernetes", "urllib3"} <= set(excluded)
    plugin = Plugin(tmp_path / "plugin")
    plugin.plan(
        clientCertificateData=cluster.certs.admin_cert.read_text(),
        clientKeyData=cluster.certs.admin_key.read_text(),
    )
    kubeconfig = with_user(cluster, {"exec": plugin.exec_entry()}, tmp_path / "config")
    done = subprocess.run(
        [sys.executable, "-c", AGENT_RUN, str(kubeconfig), json.dumps(excluded)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
    assert len(plugin.requests) == 1


def test_the_single_file_holds_nothing_it_excludes(binary: Path, tmp_path: Path) -> None:
    """What the file was built with (dist/transporter, ``make binary``): no module, nor
    compiled extension, of an excluded package is in it."""
    excluded = excluded_from_the_single_file()
    names = module_names(unpack(binary, tmp_path / "unpack"))
    assert "transporter.kube.client" in names
    assert [
        name for name in names if any(name == x or name.startswith(x + ".") for x in excluded)
    ] == []


# --- trusting the server ---------------------------------------------------------------------


async def test_tls_server_name_is_the_name_checked(cluster: Cluster, tmp_path: Path) -> None:
    named = {"tls-server-name": "kubernetes.default.svc"}  # in the serving certificate
    good = with_user(cluster, certificate_data(cluster), tmp_path / "good", cluster_changes=named)
    async with connected(good) as transport:
        assert "gitVersion" in await transport.get("/version")
    wrong = {"tls-server-name": "wrong.example"}
    bad = with_user(cluster, certificate_data(cluster), tmp_path / "bad", cluster_changes=wrong)
    async with connected(bad) as transport:
        with pytest.raises(KubeUnavailable, match="TLS with the API server failed"):
            await transport.request("GET", "/version", retry=NO_RETRY)


async def test_without_the_clusters_ca_the_server_is_not_trusted_unless_told(
    cluster: Cluster, tmp_path: Path
) -> None:
    no_ca = {"certificate-authority-data": None}
    system = with_user(
        cluster, certificate_data(cluster), tmp_path / "system", cluster_changes=no_ca
    )
    async with connected(system) as transport:
        with pytest.raises(KubeUnavailable, match="certificate verify failed"):
            await transport.request("GET", "/version", retry=NO_RETRY)
    insecure = no_ca | {"insecure-skip-tls-verify": True}
    skipped = with_user(
        cluster, certificate_data(cluster), tmp_path / "insecure", cluster_changes=insecure
    )
    async with connected(skipped) as transport:
        assert "gitVersion" in await transport.get("/version")
