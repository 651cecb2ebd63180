"""The host services in ``packaging/systemd/``: both units pass ``systemd-analyze verify`` with
nothing to say, ask for the hardening they promise (and ``systemd-analyze security`` rates them
so), give the single file a folder to unpack into once, and hand the agent its bundle as
credentials. The single file itself runs under the W^X rule they set.

And both run, installed as their comments say, in a Debian 12 root booted with systemd as its
init (tests/bed/systemd_host.py), with the test bed's cluster behind the agent."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.bed import mdwe
from tests.bed.kube import Cluster
from tests.bed.roles import PYTHON_TRANSPORTER, REGISTERED, clean_environment, running_cp
from tests.bed.systemd_host import SystemdHost, systemd_host
from transporter.protocol.identity import (
    BUNDLE_CA_FILE,
    BUNDLE_CERT_FILE,
    BUNDLE_KEY_FILE,
    BUNDLE_SIGNING_FILE,
)

UNITS = Path(__file__).resolve().parents[2] / "packaging" / "systemd"
CP, AGENT = "transporter-cp.service", "transporter-agent.service"
INSTALLED = "/usr/local/bin/transporter"
MAX_EXPOSURE = 1.5
"""``systemd-analyze security``'s overall exposure (0 to 10) each unit stays within."""
BUNDLE_FILES = (BUNDLE_CA_FILE, BUNDLE_CERT_FILE, BUNDLE_KEY_FILE, BUNDLE_SIGNING_FILE)
API_URL = re.compile(r"API listening on (https?://[^\s\"]+)")
CHANNEL_URL = re.compile(r"agent channel listening on (wss?://[^\s\"]+)")
"""The control plane's lines, in its journal (text or JSON)."""
HARDENING = {
    "NoNewPrivileges": ["yes"],
    "CapabilityBoundingSet": [""],
    "AmbientCapabilities": [""],
    "ProtectSystem": ["strict"],
    "ProtectHome": ["yes"],
    "PrivateTmp": ["yes"],
    "PrivateDevices": ["yes"],
    "ProtectKernelTunables": ["yes"],
    "ProtectKernelModules": ["yes"],
    "ProtectKernelLogs": ["yes"],
    "ProtectControlGroups": ["yes"],
    "RestrictAddressFamilies": ["AF_INET AF_INET6 AF_UNIX"],
    "RestrictNamespaces": ["yes"],
    "LockPersonality": ["yes"],
    "MemoryDenyWriteExecute": ["yes"],
    "SystemCallFilter": ["@system-service", "~@privileged @resources"],
    "SystemCallArchitectures": ["native"],
    "Restart": ["on-failure"],
    "UMask": ["0077"],
}
"""Settings both units hold, as written."""

Unit = dict[str, dict[str, list[str]]]
"""A unit file: section, key, the values in order (a key may be given more than once)."""


def read_unit(text: str) -> Unit:
    unit: Unit = {}
    section: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = unit.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        section.setdefault(key, []).append(value)
    return unit


def service(name: str) -> dict[str, list[str]]:
    return read_unit((UNITS / name).read_text())["Service"]


def unit_file(name: str) -> bytes:
    return (UNITS / name).read_bytes()


def needs_a_host_with_systemd() -> None:
    """runc to boot it, debootstrap to make its root, root to do both; in CI, a failure."""
    missing = [tool for tool in ("runc", "debootstrap") if shutil.which(tool) is None]
    why = f"missing {' '.join(missing)}" if missing else "needs root" if os.geteuid() else ""
    if why:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(why)


def needs_systemd_analyze() -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("no systemd-analyze (Debian package systemd)")


@pytest.fixture
def placed(tmp_path: Path) -> Callable[..., Path]:
    """A copy of a unit in ``tmp_path`` whose program is there (``systemd-analyze`` wants
    ExecStart's file to exist); only that path differs from the shipped unit."""
    program = tmp_path / "bin" / "transporter"
    program.parent.mkdir()
    program.write_bytes(b"\x7fELF")
    program.chmod(0o755)

    def place(name: str, text: str | None = None) -> Path:
        copy = tmp_path / name
        copy.write_text((text or (UNITS / name).read_text()).replace(INSTALLED, str(program)))
        return copy

    return place


def analyze(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_units_verify_with_nothing_to_say(placed: Callable[..., Path]) -> None:
    needs_systemd_analyze()
    done = analyze("verify", "--man=no", placed(CP), placed(AGENT))
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_verify_would_say_it_of_a_misspelt_setting(placed: Callable[..., Path]) -> None:
    """The check above can fail: a setting systemd does not know is a warning it prints."""
    needs_systemd_analyze()
    text = (UNITS / CP).read_text().replace("ProtectHome=", "ProtectHomes=")
    done = analyze("verify", "--man=no", placed(CP, text))
    assert "Unknown key 'ProtectHomes'" in done.stdout + done.stderr


@pytest.mark.parametrize("name", [CP, AGENT])
def test_each_unit_is_hardened(name: str, placed: Callable[..., Path]) -> None:
    settings = service(name)
    for key, values in HARDENING.items():
        assert settings.get(key) == values, key
    needs_systemd_analyze()
    done = analyze("security", "--offline=yes", "--no-pager", placed(name))
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d)", done.stdout)
    assert found is not None, done.stdout + done.stderr
    print(f"{name}: exposure {found.group(1)}")
    assert float(found.group(1)) <= MAX_EXPOSURE


def test_the_control_plane_keeps_its_data_and_unpacks_once() -> None:
    cp = service(CP)
    assert cp["User"] == ["transporter"]  # packaging/systemd/transporter.sysusers makes it
    assert "DynamicUser" not in cp  # `token create` runs as that user, on the same files
    assert cp["StateDirectory"] == ["transporter"]
    assert cp["CacheDirectory"] == ["transporter"]
    assert "TRANSPORTER_DATA_DIR=%S/transporter" in cp["Environment"]
    assert "TRANSPORTER_UNPACK_DIR=%C/transporter" in cp["Environment"]
    assert cp["ExecStart"] == [f"{INSTALLED} cp"]
    sysusers = (UNITS / "transporter.sysusers").read_text().splitlines()
    assert any(re.match(r"u transporter - .* /var/lib/transporter ", u) for u in sysusers)


def test_the_agent_gets_its_bundle_as_credentials() -> None:
    agent = service(AGENT)
    assert agent["DynamicUser"] == ["yes"]
    bundle = [BUNDLE_CA_FILE, BUNDLE_CERT_FILE, BUNDLE_KEY_FILE, BUNDLE_SIGNING_FILE]
    loaded = dict(value.split(":", 1) for value in agent["LoadCredential"])
    assert loaded == {
        **{name: f"/etc/transporter/agent/{name}" for name in bundle},
        "kubeconfig": "/etc/transporter/agent/kubeconfig",
    }
    assert agent["ExecStart"] == [f"{INSTALLED} agent --bundle %d --kubeconfig %d/kubeconfig"]
    assert agent["CacheDirectory"] == ["transporter-agent"]
    assert "TRANSPORTER_UNPACK_DIR=%C/transporter-agent" in agent["Environment"]


def test_the_single_file_serves_under_memory_deny_write_execute(
    binary: Path, tmp_path: Path
) -> None:
    """``MemoryDenyWriteExecute=yes`` holds for the file as the units run it: a control plane
    that makes its CA, takes a token made under the same rule, and answers."""
    kernel = subprocess.run(
        [sys.executable, mdwe.__file__, "/bin/true"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if kernel.returncode == mdwe.UNSUPPORTED:
        pytest.skip(f"this kernel has no PR_SET_MDWE: {kernel.stderr.strip()}")
    command = [sys.executable, mdwe.__file__, str(binary)]
    with running_cp(tmp_path / "data", command=command) as cp:
        token = cp.new_token()
        flags = ["--cp-url", cp.api_url, "--ca-cert", str(cp.ca_file), "-o", "json"]
        probe = subprocess.run(
            [*command, "produce", "get", "agents", *flags],
            capture_output=True,
            text=True,
            env={"TRANSPORTER_TOKEN": token},
            timeout=60,
            check=False,
        )
        assert probe.returncode == 0, probe.stderr + cp.output
        assert cp.stop() == 0
    assert "Traceback" not in cp.output


AS_ITS_USER = ["runuser", "-u", "transporter", "--", "env"]
AS_ITS_USER += ["TRANSPORTER_UNPACK_DIR=/var/cache/transporter", INSTALLED]
"""An operator's command on the control plane's host, as the README says to run it."""
STORE = ["--data-dir", "/var/lib/transporter"]


def start_the_control_plane(host: SystemdHost, binary: Path) -> tuple[str, str]:
    """The file, the sysusers entry, both units and cp.env (on loopback, free ports) installed
    as the units' comments say, the host booted, the control plane started: its agent channel
    and API URLs."""
    host.put(INSTALLED, binary.read_bytes(), 0o755)
    host.put("/usr/lib/sysusers.d/transporter.conf", unit_file("transporter.sysusers"), 0o644)
    for name in (CP, AGENT):
        host.put(f"/etc/systemd/system/{name}", unit_file(name), 0o644)
    env = unit_file("cp.env").replace(b"0.0.0.0:8080", b"127.0.0.1:0")
    host.put("/etc/transporter/cp.env", env.replace(b"0.0.0.0:8443", b"127.0.0.1:0"), 0o644)
    host.boot()
    host.run("systemd-sysusers")
    host.run("systemctl", "daemon-reload")
    with host.journal(CP) as log:
        host.run("systemctl", "start", CP)
        return log.wait_for(CHANNEL_URL).group(1), log.wait_for(API_URL).group(1)


def start_the_agent(host: SystemdHost, cluster: Cluster, channel: str) -> None:
    """A bundle made as the control plane's user, installed root's own with the cluster's
    kubeconfig, and the agent started: until it has registered."""
    out = "/var/lib/transporter/site-1"
    host.run(*AS_ITS_USER, "bundle", "create", "--agent-id", "site-1", "--out", out, *STORE)
    for name in BUNDLE_FILES:
        bundled = host.path(f"{out}/{name}").read_bytes()
        host.put(f"/etc/transporter/agent/{name}", bundled, 0o600)
    host.put("/etc/transporter/agent/kubeconfig", cluster.kubeconfig.read_bytes(), 0o600)
    host.put("/etc/transporter/agent.env", f"TRANSPORTER_CP_URL={channel}\n".encode(), 0o644)
    with host.journal(AGENT) as log:
        host.run("systemctl", "start", AGENT)
        log.wait_for(REGISTERED)


def submit(host: SystemdHost, api: str, manifest: Path) -> dict[str, Any]:
    """``produce k8s --wait -o json`` from this host, with a token made as the control plane's
    user: what it printed."""
    token = host.run(*AS_ITS_USER, "token", "create", "--name", "t", "--role", "admin", *STORE)
    flags = ["--cp-url", api, "--ca-cert", str(host.path("/var/lib/transporter/ca.crt"))]
    flags += ["--agent", "site-1", "--manifest", str(manifest), "--wait", "-o", "json"]
    done = subprocess.run(
        [*PYTHON_TRANSPORTER, "produce", "k8s", *flags],
        capture_output=True,
        text=True,
        env=clean_environment() | {"TRANSPORTER_TOKEN": token.stdout.strip()},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    shown: dict[str, Any] = json.loads(done.stdout)
    return shown


def test_both_units_run_an_event_under_systemd(
    binary: Path, cluster: Cluster, tmp_path: Path
) -> None:
    """In a Debian 12 host whose init is systemd: the control plane starts, the agent starts
    with a root-owned bundle and kubeconfig handed over as credentials, an event completes,
    both run sandboxed (no capabilities, no new privileges, a seccomp filter, not root), each
    unpacked the file once under its CacheDirectory, and both stop cleanly."""
    needs_a_host_with_systemd()
    manifest = tmp_path / "cm.yaml"
    name = f"systemd-{uuid.uuid4().hex[:10]}"
    manifest.write_text(f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\n")
    with systemd_host(tmp_path / "host") as host:
        channel, api = start_the_control_plane(host, binary)
        start_the_agent(host, cluster, channel)
        assert submit(host, api, manifest)["state"] == "completed"
        for unit, cache in ((CP, "transporter"), (AGENT, "transporter-agent")):
            status = host.main_process_status(unit)
            assert (status["NoNewPrivs"], status["Seccomp"]) == ("1", "2"), unit
            assert int(status["CapEff"], 16) == 0 == int(status["CapBnd"], 16), unit
            assert status["Uid"].split()[0] != "0", unit
            unpacked = [p.name for p in host.path(f"/var/cache/{cache}").iterdir()]
            assert len(unpacked) == 1, unpacked
            assert re.fullmatch(r"[0-9a-f]{64}", unpacked[0]), unpacked
        host.run("systemctl", "stop", AGENT, CP)
        for unit in (CP, AGENT):
            assert host.show(unit, "Result") == "success", unit
            assert host.show(unit, "ExecMainStatus") == "0", unit
