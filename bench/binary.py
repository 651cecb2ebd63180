"""Size of the single-file build and the median cold start of ``transporter --version``.

    make binary && .venv/bin/python bench/binary.py [--runs 15] [--binary dist/transporter]

Each run is a fresh process, as a user's is; the one-file build unpacks itself on every start,
so this is the real start-up cost. Prints figures only: CI machines are too noisy for a timed test.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--binary", type=Path, default=Path("dist/transporter"))
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    if not args.binary.is_file():
        parser.error(f"{args.binary} does not exist: run `make binary` first")
    size = args.binary.stat().st_size
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        subprocess.run([str(args.binary), "--version"], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    print(f"binary          {args.binary}")
    print(f"size            {size / 1e6:.1f} MB ({size} bytes)")
    print(
        f"--version       median {statistics.median(times) * 1000:.0f} ms over {args.runs} runs"
        f" (min {min(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
