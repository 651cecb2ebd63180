"""What the producer loads: a plain ``produce`` never imports what the single file keeps as a
lazy member (rich's tables load ``decimal``, a compiled module extracted on first import)."""

from __future__ import annotations

import subprocess
import sys

LAZY_STDLIB = ("decimal", "_decimal", "fractions")


def test_the_producer_imports_no_lazy_standard_module() -> None:
    code = (
        "import sys, transporter.cli.app, transporter.cli.produce, transporter.produce.main\n"
        f"print(sorted(m for m in {LAZY_STDLIB!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stderr
