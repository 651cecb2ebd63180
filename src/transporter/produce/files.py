"""Reading manifests from the files and folders named on the command line."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from transporter.protocol.submission import MAX_MANIFEST_BYTES, MAX_MANIFESTS

SUFFIXES = (".yaml", ".yml", ".json")


class ManifestFileError(Exception):
    """A named file or folder cannot be used; the message says which and why."""


def read_manifests(paths: Iterable[Path]) -> list[str]:
    """One manifest string per file; a folder gives its YAML/JSON files in name order."""
    manifests: list[str] = []
    for path in paths:
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix in SUFFIXES and p.is_file())
            if not files:
                raise ManifestFileError(f"{path}: no {', '.join(SUFFIXES)} files in this folder")
        elif path.exists():
            files = [path]
        else:
            raise ManifestFileError(f"{path}: no such file or folder")
        for file in files:
            try:
                text = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ManifestFileError(f"{file}: {exc}") from None
            if not text.strip():
                raise ManifestFileError(f"{file}: the file is empty")
            manifests.append(text)
    # The control plane's limits, told here: past them it would refuse the whole event (and a
    # body over its size limit is cut off before an answer can be read).
    if len(manifests) > MAX_MANIFESTS:
        raise ManifestFileError(
            f"{len(manifests)} manifest files; one event takes at most {MAX_MANIFESTS}"
        )
    total = sum(len(text.encode()) for text in manifests)
    if total > MAX_MANIFEST_BYTES:
        raise ManifestFileError(
            f"the manifests hold {total} bytes; one event takes at most {MAX_MANIFEST_BYTES}"
        )
    return manifests
