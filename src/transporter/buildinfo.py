"""What this build is: version, commit, build date, the Python it runs on, the platform.

``transporter --version`` answers from here before anything else is imported (:func:`answer`),
so that it is fast from the single file too. The single file's build writes the module
``_transporter_build`` (``COMMIT``, ``BUILD_DATE``); from a source checkout the commit is read
from ``.git`` (a few small files, no ``git`` process) and the build date is ``unknown``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from transporter import __version__

UNKNOWN = "unknown"
_READ_AT_MOST = 1 << 20
"""Bytes read of one ``.git`` file: a HEAD or a ref is a line; packed-refs may be long."""


def _build() -> tuple[str, str]:
    try:
        import _transporter_build  # type: ignore[import-not-found]  # the single file's
    except ImportError:
        return _source_commit(), UNKNOWN
    commit = str(getattr(_transporter_build, "COMMIT", "") or UNKNOWN)
    return commit, str(getattr(_transporter_build, "BUILD_DATE", "") or UNKNOWN)


def _read(*parts: str) -> str:
    try:
        with open(os.path.join(*parts), "rb") as file:  # os.path: pathlib is slower to import
            return file.read(_READ_AT_MOST).decode("utf-8", "replace")
    except OSError:
        return ""


def _is_commit(text: str) -> bool:
    return len(text) in (40, 64) and all(c in "0123456789abcdef" for c in text)


def _source_commit() -> str:
    """The commit of the checkout this module lies in, or ``unknown``."""
    here = os.path.dirname(os.path.realpath(__file__))
    root = os.path.dirname(os.path.dirname(here))
    git = os.path.join(root, ".git")
    if os.path.isfile(git):  # a worktree: "gitdir: PATH"
        git = os.path.join(root, _read(git).strip().removeprefix("gitdir:").strip())
    head = _read(git, "HEAD").strip()
    if _is_commit(head):
        return head
    ref = head.removeprefix("ref:").strip()
    if not ref.startswith("refs/"):
        return UNKNOWN
    common = os.path.join(git, _read(git, "commondir").strip() or ".")
    for folder in (git, common):
        found = _read(folder, ref).strip()
        if _is_commit(found):
            return found
        for line in _read(folder, "packed-refs").splitlines():
            commit, _, name = line.partition(" ")
            if name == ref and _is_commit(commit):
                return commit
    return UNKNOWN


def info() -> dict[str, str]:
    """The build's facts, as ``--version -o json`` prints them."""
    commit, built = _build()
    python = ".".join(str(part) for part in sys.version_info[:3])
    return {
        "version": __version__,
        "commit": commit,
        "build_date": built,
        "python": python,
        "platform": f"{sys.platform}/{os.uname().machine}",
    }


def text() -> str:
    """``transporter 0.1.0 (commit 0123456789ab, built 2026-12-06T07:00:00Z, Python 3.13.1,
    linux/x86_64)``."""
    facts = info()
    commit = facts["commit"][:12] + ("+dirty" if facts["commit"].endswith("+dirty") else "")
    return (
        f"transporter {facts['version']} (commit {commit}, built {facts['build_date']},"
        f" Python {facts['python']}, {facts['platform']})"
    )


def show(output: str) -> int:
    """Print the version in ``output`` (text or json); the exit code."""
    if output == "json":
        import json  # here: the text answer needs none

        sys.stdout.write(json.dumps(info(), indent=2) + "\n")
    else:
        sys.stdout.write(text() + "\n")
    sys.stdout.flush()
    return 0


def answer(argv: Sequence[str]) -> int | None:
    """The exit code when ``argv`` asks for the version alone (``--version`` or ``version``,
    with ``-o text|json`` or none), answered; ``None`` for any other command line."""
    if not argv or argv[0] not in ("--version", "version"):
        return None
    rest = list(argv[1:])
    if len(rest) == 1 and rest[0].startswith(("-o", "--output=")):
        rest = ["-o", rest[0].removeprefix("--output=").removeprefix("-o")]
    if not rest:
        return show("text")
    if len(rest) == 2 and rest[0] in ("-o", "--output") and rest[1] in ("text", "json"):
        return show(rest[1])
    return None
