"""The single-file build (``make binary``) runs on its own: ``--version`` and a serving ``cp``."""

from __future__ import annotations

import os
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.procs import running_cp
from transporter import __version__
from transporter.agent.bundle import load_bundle

BINARY = Path(__file__).resolve().parents[1] / "dist" / "transporter"

pytestmark = pytest.mark.binary


@pytest.fixture
def binary() -> Path:
    if not BINARY.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{BINARY} is missing: .ci/run must run `make binary` before the tests")
        pytest.skip("no dist/transporter: run `make binary` first")
    return BINARY


def test_the_binary_answers_version(binary: Path) -> None:
    # A clean environment: the file must not lean on the venv or on PYTHONPATH.
    done = subprocess.run(
        [str(binary), "--version"], capture_output=True, text=True, env={}, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"transporter {__version__}"


def test_the_binary_serves_healthz_and_stops_on_sigterm(binary: Path, tmp_path: Path) -> None:
    with running_cp(tmp_path, command=[str(binary)]) as cp:
        with urllib.request.urlopen(f"{cp.api_url}/healthz", timeout=10) as answer:
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
