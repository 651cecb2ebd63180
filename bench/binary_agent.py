"""Memory of an idle agent run from the single file, with everything it leaves in memory counted:
what a pod is charged.

    make binary && .venv/bin/python bench/binary_agent.py [--binary dist/transporter] [--runs 3]

Each run starts the agent from the file in a fresh memory cgroup (v2, or v1's memory controller)
and a private mount namespace where its unpack folder (``TRANSPORTER_UNPACK_DIR``) is a fresh
tmpfs: the first start unpacks there, so the unpacked files are memory charged to that cgroup,
as a pod's emptyDir of medium Memory, or its /tmp on tmpfs, would be. Once the agent has
registered with a control plane (of the venv) and settled, it prints:

- ``charged``: the cgroup's usage (memory.current, or memory.usage_in_bytes): the agent's own
  memory, the unpacked files on tmpfs and any page cache it brought in, each page once;
- of which ``unpacked``: the bytes of the unpack folder (tmpfs), and ``anon``: the process's
  anonymous memory (RssAnon), and ``rss``: its resident set (VmRSS, which counts the mapped
  pages of the unpacked libraries, already in ``unpacked``).

Then the same with the unpack folder on disk, unpacked before by another process and dropped
from the page cache: ``charged`` is then the agent's memory and the pages of the unpacked files
it reads (``cache``), as for a pod whose image holds the folder unpacked, or a host's second
start; the folder (the core an agent needs, 22.7 MB: the lazy members only some commands
load are extracted on their first use, packaging/launcher/README.md) stays on disk, once per
build.

Last, the same from disk in a cgroup limited to 50 MB, as a pod's limit: the kernel reclaims
page cache before it kills, so the agent runs there as long as what it cannot give back fits.

Target (issue 12): <= 50 MB with everything included. Needs root (cgroups, mounts).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.bed.kube import running_cluster

from bench.common import Api, control_plane, create_bundle, started, wait_for_agents

SETTLE = 3.0
"""Seconds to let heartbeats and allocations settle before reading memory."""
MB = 1e6
LIMIT = 50_000_000
"""The issue's target, as a pod's memory limit."""


class Cgroup:
    """A fresh memory cgroup; ``procs`` is the file a process writes its pid to to join."""

    def __init__(self, name: str) -> None:
        unified = Path("/sys/fs/cgroup")
        controllers = unified / "cgroup.controllers"
        if controllers.exists() and "memory" in controllers.read_text().split():
            self.v2 = True
            self.path = unified / name
        else:
            own = next(
                line.split(":", 2)[2]
                for line in Path("/proc/self/cgroup").read_text().splitlines()
                if line.split(":")[1] == "memory"
            )
            self.v2 = False
            self.path = Path("/sys/fs/cgroup/memory") / own.lstrip("/") / name
        self.path.mkdir()
        self.procs = self.path / "cgroup.procs"

    def limit(self, size: int) -> None:
        """A hard memory limit: above it the kernel reclaims page cache, then kills."""
        name = "memory.max" if self.v2 else "memory.limit_in_bytes"
        (self.path / name).write_text(str(size))

    def usage(self) -> int:
        name = "memory.current" if self.v2 else "memory.usage_in_bytes"
        return int((self.path / name).read_text())

    def stat(self) -> dict[str, int]:
        pairs = (line.split() for line in (self.path / "memory.stat").read_text().splitlines())
        return {key: int(value) for key, value in pairs}

    def remove(self) -> None:
        for _ in range(50):  # the kernel lets go of a cgroup a moment after its last process
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.1)


def status(pid: int) -> dict[str, int]:
    """The kB fields of /proc/PID/status, in bytes."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if match := re.fullmatch(r"(\w+):\s+(\d+) kB", line):
            found[match[1]] = int(match[2]) * 1024
    return found


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def evict(folder: Path) -> None:
    """Drop the page cache of the files under ``folder`` (written by another cgroup), so that
    the pages the agent reads are brought in, and charged, anew."""
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


@contextmanager
def agent_in_cgroup(
    argv: list[str], unpack: Path, *, tmpfs: bool, limit: int | None = None
) -> Iterator[tuple[int, Cgroup]]:
    """The agent (``argv``) in a fresh cgroup (limited to ``limit`` bytes), unpacking into
    ``unpack``: a fresh tmpfs, or a folder on disk that already holds it unpacked."""
    cgroup = Cgroup(f"transporter-bench-{os.getpid()}-{unpack.name}")
    if limit is not None:
        cgroup.limit(limit)
    mount = ""
    if tmpfs:
        unpack.mkdir()
        mount = f"mount -t tmpfs -o mode=0700 tmpfs {unpack} && "
    script = f'{mount}echo $$ > {cgroup.procs} && exec env TRANSPORTER_UNPACK_DIR={unpack} "$@"'
    wrapped = ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", *argv]
    try:
        with started(wrapped, re.compile(r"(registered) with")) as (agent, _):
            yield agent.pid, cgroup
    finally:
        cgroup.remove()


def measure(
    argv: list[str], api: Api, unpack: Path, *, tmpfs: bool, limit: int | None = None
) -> dict[str, int]:
    with agent_in_cgroup(argv, unpack, tmpfs=tmpfs, limit=limit) as (pid, cgroup):
        wait_for_agents(api, 1)
        time.sleep(SETTLE)
        if not Path(f"/proc/{pid}").exists():
            raise RuntimeError(f"the agent died in a cgroup limited to {limit} bytes")
        proc = status(pid)
        stat = cgroup.stat()
        root = Path(f"/proc/{pid}/root")  # the agent's mount namespace holds the tmpfs
        return {
            "charged": cgroup.usage(),
            "unpacked": folder_bytes(root / str(unpack).lstrip("/")),
            "anon": proc["RssAnon"],
            "rss": proc["VmRSS"],
            "shmem": stat.get("shmem", 0),
            "cache": stat.get("file", stat.get("cache", 0)),
        }


def line(name: str, values: list[int], note: str = "") -> str:
    shown = " ".join(f"{v / MB:5.1f}" for v in values)
    median = statistics.median(values) / MB
    return f"{name:<10} median {median:5.1f} MB   (runs: {shown}){note}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", type=Path, default=Path("dist/transporter"))
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not args.binary.is_file():
        parser.error(f"{args.binary} does not exist: run `make binary` first")
    os.environ["TRANSPORTER_LOG_FORMAT"] = "text"  # the lines started() waits for
    runs: list[dict[str, int]] = []
    on_disk: list[dict[str, int]] = []
    limited: list[dict[str, int]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with (
            running_cluster("bench", work / "cluster") as cluster,
            control_plane(work / "cp") as (_, api_url, agent_url, token),
        ):
            api = Api(api_url, token, work / "cp")
            bundle = create_bundle(work / "cp", "idle", work / "bundle")
            argv = [str(args.binary.resolve()), "agent", "--bundle", str(bundle)]
            argv += ["--cp-url", agent_url, "--kubeconfig", str(cluster.kubeconfig)]
            for n in range(args.runs):
                runs.append(measure(argv, api, work / f"unpack-{n}", tmpfs=True))
            disk = work / "disk"
            unpacked = subprocess.run(
                [argv[0], "--version"], env={"TRANSPORTER_UNPACK_DIR": str(disk)}, check=False
            )
            if unpacked.returncode != 0:
                raise RuntimeError(f"{argv[0]} --version exited with {unpacked.returncode}")
            for _ in range(args.runs):
                evict(disk)
                on_disk.append(measure(argv, api, disk, tmpfs=False))
            for _ in range(args.runs):
                evict(disk)
                limited.append(measure(argv, api, disk, tmpfs=False, limit=LIMIT))
            api.close()
    print(f"binary     {args.binary} ({args.binary.stat().st_size / MB:.1f} MB)")
    print("unpacking into a fresh tmpfs (the first start of a pod whose /tmp is memory):")
    print(line("charged", [r["charged"] for r in runs], "   target <= 50 MB"))
    print(line("unpacked", [r["unpacked"] for r in runs], "   on tmpfs, in charged"))
    print(line("shmem", [r["shmem"] for r in runs], "   the cgroup's tmpfs pages"))
    print(line("anon", [r["anon"] for r in runs], "   the agent's own (RssAnon)"))
    print(line("rss", [r["rss"] for r in runs], "   VmRSS, mapped libraries included"))
    print("from a folder on disk unpacked before (a host's cache, or one unpacked in an image):")
    print(line("charged", [r["charged"] for r in on_disk], "   target <= 50 MB"))
    print(line("cache", [r["cache"] for r in on_disk], "   page cache it read, in charged"))
    print(line("anon", [r["anon"] for r in on_disk], "   the agent's own (RssAnon)"))
    print(line("rss", [r["rss"] for r in on_disk], "   VmRSS, mapped libraries included"))
    print(f"the same in a cgroup limited to {LIMIT / MB:.0f} MB (page cache is reclaimed first):")
    print(line("charged", [r["charged"] for r in limited], "   registered, idle, alive"))
    print(line("cache", [r["cache"] for r in limited]))
    print(line("anon", [r["anon"] for r in limited]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
