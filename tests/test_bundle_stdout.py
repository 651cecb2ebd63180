"""``bundle create --out -`` with its stdout closed (tests/test_bundle_cli.py has the rest)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.bed.roles import PYTHON_TRANSPORTER, running_cp


def test_a_bundle_to_a_closed_stdout_is_refused_in_one_line(tmp_path: Path) -> None:
    """``--out -`` with stdout closed (``>&-``): one line, not a traceback."""
    data = tmp_path / "cp"
    with running_cp(data):
        pass
    flags = ["--agent-id", "site-1", "--out", "-", "--data-dir", str(data)]
    done = subprocess.run(
        [*PYTHON_TRANSPORTER, "bundle", "create", *flags],
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        preexec_fn=lambda: os.close(1),  # the child's stdout only
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "transporter bundle create: error: --out - writes a tar to stdout, which is closed:"
        " redirect it to a file"
    )
