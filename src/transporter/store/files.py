"""The embedded store's files are its owner's alone: every submitted Secret is in them.

A new folder is made 0700 and the database 0600 before SQLite opens it (SQLite gives its
``-wal`` and ``-shm`` files the database's mode), whichever command makes them first. Files of
ours found readable by others (made by an older version, or by hand) are made owner-only; a
folder found so is reported, not changed: it may be a folder the user shares on purpose.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)

FOLDER_MODE: Final = 0o700
FILE_MODE: Final = 0o600
SIDE_FILES: Final = ("-wal", "-shm", "-journal")


def prepare_private(path: Path) -> None:
    """Make ``path``'s folder (0700) and the file itself (0600) if they are not there yet."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE))


def tighten(path: Path) -> list[str]:
    """Make the store's files owner-only where they are not; say what was found (also logged)."""
    found: list[str] = []
    for file in (path, *(path.with_name(path.name + side) for side in SIDE_FILES)):
        found += _tighten_file(file)
    found += _check_folder(path.parent)
    for line in found:
        log.warning("%s", line)
    return found


def _loose(mode: int) -> bool:
    return bool(stat.S_IMODE(mode) & 0o077)


def _tighten_file(file: Path) -> list[str]:
    try:
        info = file.lstat()
    except FileNotFoundError:
        return []
    if not stat.S_ISREG(info.st_mode) or not _loose(info.st_mode):
        return []
    mode = oct(stat.S_IMODE(info.st_mode))
    if info.st_uid != os.geteuid():
        return [
            f"{file} is readable by other users (mode {mode}) and not ours to change: chmod 600 it"
        ]
    os.chmod(file, FILE_MODE)
    return [f"{file} was readable by other users (mode {mode}): made owner-only (0600)"]


def _check_folder(folder: Path) -> list[str]:
    try:
        info = folder.stat()
    except FileNotFoundError:
        return []
    if not _loose(info.st_mode):
        return []
    mode = oct(stat.S_IMODE(info.st_mode))
    return [
        f"the store's folder {folder} is open to other users (mode {mode}); its files are"
        f" owner-only, but make the folder so too: chmod 700 {folder}"
    ]
