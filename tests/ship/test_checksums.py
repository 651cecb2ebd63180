"""``packaging/checksums`` (``make dist``): dist/SHA256SUMS names what ships (the single file,
the image archive, the charts' packages) and nothing else, in the form ``sha256sum --check``
reads on the other end; without the file or the image it refuses in one line."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "packaging" / "checksums"
SHIPPED = ["transporter", "transporter-image.tar", "transporter-agent-0.1.0.tgz"]
SHIPPED += ["transporter-cp-0.1.0.tgz"]


def run(dist: Path, *, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), str(dist)], capture_output=True, text=True, timeout=60, check=False, cwd=cwd
    )


def fill(dist: Path, names: list[str]) -> None:
    dist.mkdir(exist_ok=True)
    for name in names:
        (dist / name).write_bytes(f"the bytes of {name}\n".encode())


def test_sha256sums_lists_what_ships_and_checks(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    fill(dist, [*SHIPPED, "notes.txt", "transporter.spec.bak"])
    (dist / "SHA256SUMS").write_text("stale\n")
    done = run(dist, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = (dist / "SHA256SUMS").read_text().splitlines()
    assert lines == [
        f"{hashlib.sha256((dist / name).read_bytes()).hexdigest()}  {name}"
        for name in sorted(SHIPPED)
    ]
    check = subprocess.run(
        ["sha256sum", "--check", "SHA256SUMS"],
        cwd=dist,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    (dist / "transporter").write_bytes(b"another file\n")
    tampered = subprocess.run(
        ["sha256sum", "--check", "--quiet", "SHA256SUMS"],
        cwd=dist,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert tampered.returncode == 1
    assert tampered.stdout.strip() == "transporter: FAILED"


def test_without_the_image_it_says_what_to_run(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    fill(dist, ["transporter"])
    done = run(dist)
    assert done.returncode == 1
    assert done.stderr == f"packaging/checksums: no {dist}/transporter-image.tar: run make dist\n"
    assert not (dist / "SHA256SUMS").exists()
