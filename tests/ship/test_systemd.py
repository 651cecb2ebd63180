"""The host services in ``packaging/systemd/``: both units pass ``systemd-analyze verify`` with
nothing to say, ask for the hardening they promise (and ``systemd-analyze security`` rates them
so), give the single file a folder to unpack into once, and hand the agent its bundle as
credentials. The single file itself runs under the W^X rule they set.

No systemd runs here as the init (this test bed is a VM without one), so the units are checked,
not started."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.bed import mdwe
from tests.bed.roles import running_cp
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
