"""What the single file holds: it unpacked into a folder (as its launcher does at the first
start), and the names of what is in that folder, modules and libraries."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from PyInstaller.archive.readers import pkg_archive_contents

EXTENSION = ".cpython-313-x86_64-linux-gnu.so"
LIBDIR = "_internal"
LAZY_INDEX = f"{LIBDIR}/transporter-lazy.txt"


def unpack(binary: Path, root: Path) -> Path:
    """Run ``binary --version`` with ``TRANSPORTER_UNPACK_DIR=root``: the folder it unpacked."""
    done = subprocess.run(
        [str(binary), "--version"],
        capture_output=True,
        text=True,
        env={"TRANSPORTER_UNPACK_DIR": str(root), "PATH": os.environ.get("PATH", "")},
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{binary} --version exited with {done.returncode}: {done.stderr}")
    (folder,) = root.iterdir()
    return folder


def module_names(folder: Path) -> list[str]:
    """The Python modules of the unpacked program (its archive), dotted, then its compiled
    extensions and libraries (the lazy ones not yet extracted too) as dotted names
    (``cryptography.hazmat.bindings._rust``, ``readline``, ``libssl``), so that
    ``name.startswith(package + ".")`` finds a package's."""
    names = list(pkg_archive_contents(str(folder / "transporter")))
    files = {p for p in (folder / LIBDIR).rglob("*") if not p.is_dir()}
    # The lazy members too, which a start extracts only when it needs them (packaging/launcher).
    index = (folder / LAZY_INDEX).read_text().splitlines()
    files |= {folder / line.split()[1] for line in index if line.startswith("F ")}
    for path in sorted(files):
        relative = path.relative_to(folder / LIBDIR)
        parts = relative.parts[2:] if relative.parts[:1] == ("python3.13",) else relative.parts
        if not parts:
            continue
        leaf = parts[-1]
        leaf = leaf.removesuffix(EXTENSION).split(".so")[0].removesuffix(".py").removesuffix(".pyc")
        names.append(".".join([*parts[:-1], leaf]))
    return names
