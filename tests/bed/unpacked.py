"""What the single file holds: it unpacked into a folder (as its launcher does at the first
start), and the names of what is in that folder, modules and libraries."""

from __future__ import annotations

import os
import subprocess
import zipfile
from pathlib import Path

from PyInstaller.archive.readers import pkg_archive_contents

EXTENSION = ".cpython-313-x86_64-linux-gnu.so"
LIBDIR = "_internal"
LAZY_INDEX = f"{LIBDIR}/transporter-lazy.txt"
LAZY_MODULES = f"{LIBDIR}/transporter-lazy-modules.zip"


def unpack(binary: Path, root: Path, *, everything: bool = True) -> Path:
    """Run ``binary --version`` with ``TRANSPORTER_UNPACK_DIR=root``: the folder it unpacked,
    with its lazy members too (``TRANSPORTER_UNPACK_ALL=1``) unless not ``everything``."""
    env = {"TRANSPORTER_UNPACK_DIR": str(root), "PATH": os.environ.get("PATH", "")}
    if everything:
        env["TRANSPORTER_UNPACK_ALL"] = "1"
    done = subprocess.run(
        [str(binary), "--version"],
        capture_output=True,
        text=True,
        env=env,
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
    # The pure-Python packages of the lazy zip (transporter.spec's LAZY_PACKAGES).
    if (folder / LAZY_MODULES).is_file():
        with zipfile.ZipFile(folder / LAZY_MODULES) as archive:
            entries = [n for n in archive.namelist() if n.endswith(".pyc")]
        names += [
            n.removesuffix(".pyc").removesuffix("/__init__").replace("/", ".") for n in entries
        ]
    for path in sorted(files):
        relative = path.relative_to(folder / LIBDIR)
        parts = relative.parts[2:] if relative.parts[:1] == ("python3.13",) else relative.parts
        if not parts:
            continue
        leaf = parts[-1]
        leaf = leaf.removesuffix(EXTENSION).split(".so")[0].removesuffix(".abi3")
        leaf = leaf.removesuffix(".py").removesuffix(".pyc")
        names.append(".".join([*parts[:-1], leaf]))
    return names
