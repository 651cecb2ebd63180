"""Roots to run the single file in, as an operator's host would: one holding only the file and
``/tmp``, and a Debian 11 (bullseye, glibc 2.31) minbase root made by debootstrap.

The Debian root is built once per machine under ``~/.cache/transporter/roots/`` (outside the
clone, like the test bed's API server) and never written to afterwards: each use runs on an
overlay of it in a private mount namespace, whose writes go to the test's own folder.

    python -m tests.bed.roots      # build the Debian root now (CI warms it before the tests)
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import attrs

CACHE = Path.home() / ".cache" / "transporter" / "roots"
DEBIAN_SUITE = "bullseye"
DEBIAN_MIRROR = os.environ.get("TRANSPORTER_DEBIAN_MIRROR", "http://deb.debian.org/debian")
NOBODY = "65532:65532"
"""The uid and gid the file runs as, as in the image (no such user exists in either root)."""
CHROOT = shutil.which("chroot", path="/usr/sbin:/usr/bin:/sbin:/bin") or "/usr/sbin/chroot"
IN_ROOT = "/transporter"
"""Where the file is in each root."""


@attrs.frozen
class Root:
    """A folder to run the file in with ``chroot``; ``lower`` is a read-only root it is an
    overlay of (mounted anew for each command, in the command's own mount namespace)."""

    path: Path
    lower: Path | None = None

    def argv(
        self, *args: str, user: str = NOBODY, env: Sequence[str] = (), before: str = ""
    ) -> list[str]:
        """The command that runs ``/transporter *args`` in this root as ``user``, with only the
        variables ``env`` (``NAME=value``) set. ``before`` is shell run first as root in the
        command's mount namespace (a tmpfs mounted noexec on ``/tmp``, say)."""
        merged = str(self.path)
        mount = ""
        if self.lower is not None:
            upper, work = self.path.with_name("upper"), self.path.with_name("work")
            mount = (
                f"mount -t overlay overlay -o lowerdir={self.lower},upperdir={upper},"
                f"workdir={work} {merged} && "
            )
        script = f'{mount}cd {merged} && {before or ":"} && exec env -i "$@"'
        chroot = [CHROOT, f"--userspec={user}", merged, IN_ROOT, *args]
        namespace = ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh"]
        return [*namespace, *env, *chroot]

    def host_path(self, inside: str) -> Path:
        """The host's path of ``inside`` (an absolute path in the root), for what the command
        wrote there; an overlay's writes are in its upper folder."""
        base = self.path.with_name("upper") if self.lower is not None else self.path
        return base / inside.lstrip("/")


def empty_root(folder: Path, binary: Path) -> Root:
    """``folder`` holding only the file and a ``/tmp`` anyone may write to (sticky)."""
    folder.mkdir(parents=True)
    shutil.copy2(binary, folder / IN_ROOT.lstrip("/"))
    (folder / "tmp").mkdir(mode=0o1777)
    (folder / "tmp").chmod(0o1777)
    return Root(folder)


def debian_root(folder: Path, binary: Path) -> Root:
    """An overlay of the cached Debian 11 minbase root in ``folder``, with the file added."""
    lower = debian11()
    for name in ("merged", "upper", "work"):
        (folder / name).mkdir(parents=True)
    shutil.copy2(binary, folder / "upper" / IN_ROOT.lstrip("/"))
    return Root(folder / "merged", lower)


def debian11() -> Path:
    """The Debian 11 minbase root, made by debootstrap the first time (a few minutes)."""
    return debootstrapped(f"debian-11-{DEBIAN_SUITE}-minbase", DEBIAN_SUITE, "etc/debian_version")


def debootstrapped(name: str, suite: str, marker: str, include: Sequence[str] = ()) -> Path:
    """``CACHE/name``, a minbase root of ``suite`` (with the packages ``include``), made by
    debootstrap the first time: built aside and renamed into place once ``marker`` (a path in
    it) is there, under a lock another test run may hold."""
    root = CACHE / name
    if (root / marker).exists():
        return root
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test run may be building it
        if (root / marker).exists():
            return root
        partial = root.with_name(root.name + ".partial")
        if partial.exists():
            subprocess.run(["rm", "-rf", "--one-file-system", str(partial)], check=True)
        argv = ["debootstrap", "--variant=minbase"]
        if include:
            argv.append(f"--include={','.join(include)}")
        done = subprocess.run(
            [*argv, suite, str(partial), DEBIAN_MIRROR],
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
        if done.returncode != 0 or not (partial / marker).exists():
            raise RuntimeError(f"debootstrap of {suite} failed: {done.stdout[-2000:]}")
        partial.rename(root)
    return root


if __name__ == "__main__":
    print(debian11())
