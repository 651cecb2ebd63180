"""The single file (``make binary``): its size, what it unpacks, the first start (which unpacks
it) and the median start of ``transporter --version`` after that, beside the same from the venv.

    make binary && .venv/bin/python bench/binary.py [--runs 30] [--first-runs 3]
                                                    [--binary dist/transporter]

Each run is a fresh process, as a user's is. The first start of a given file unpacks it into a
folder named by its payload's hash (packaging/launcher/README.md); here into a fresh temporary
folder (``TRANSPORTER_UNPACK_DIR``) for each first-start run, and every later start runs from
the folder unpacked. Prints figures only: CI machines are too noisy for a timed test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def start(argv: list[str], env: dict[str, str]) -> float:
    """Seconds from start to exit of ``argv``, which must succeed."""
    began = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, env=env)
    return time.perf_counter() - began


def tree_size(folder: Path) -> tuple[int, int]:
    """Bytes and files under ``folder``."""
    files = [p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()]
    return sum(p.stat().st_size for p in files), len(files)


def figures(times: list[float]) -> str:
    ms = [t * 1000 for t in times]
    return (
        f"median {statistics.median(ms):.0f} ms over {len(ms)} runs"
        f" (min {min(ms):.0f} ms, max {max(ms):.0f} ms)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--binary", type=Path, default=Path("dist/transporter"))
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--first-runs", type=int, default=3)
    args = parser.parse_args()
    if not args.binary.is_file():
        parser.error(f"{args.binary} does not exist: run `make binary` first")
    binary = [str(args.binary.resolve()), "--version"]
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    with tempfile.TemporaryDirectory() as tmp:
        firsts = []
        for n in range(args.first_runs):
            firsts.append(start(binary, base | {"TRANSPORTER_UNPACK_DIR": f"{tmp}/first-{n}"}))
        unpacked = Path(tmp) / "first-0"
        (folder,) = unpacked.iterdir()
        size, count = tree_size(folder)
        env = base | {"TRANSPORTER_UNPACK_DIR": str(unpacked)}
        later = [start(binary, env) for _ in range(args.runs)]
    venv = [start([sys.executable, "-m", "transporter", "--version"], base)]
    venv += [start([sys.executable, "-m", "transporter", "--version"], base) for _ in range(9)]
    print(f"binary              {args.binary}")
    print(f"size                {args.binary.stat().st_size / 1e6:.1f} MB")
    print(f"unpacks             {size / 1e6:.1f} MB in {count} files, once per build")
    print(f"first start         {figures(firsts)} (unpacks)")
    print(f"--version           {figures(later)} from the file, once unpacked")
    print(f"--version (venv)    {figures(venv)} from .venv, for comparison")
    return 0


if __name__ == "__main__":
    sys.exit(main())
