"""A host whose init is systemd, to start the units of ``packaging/systemd/`` for real: a
Debian 12 root with systemd (debootstrap, built once per machine under
``~/.cache/transporter/roots/`` and never written to afterwards), an overlay of it per test, booted
by runc as a container in this host's network namespace (the test reaches the ports the services
bind). The boot is awaited on systemd's own ``READY=1`` (``NOTIFY_SOCKET``, which runc passes
in), never by polling.

    python -m tests.bed.systemd_host     # build the root now (CI may warm it before the tests)
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from tests.bed.process import Child
from tests.bed.roots import debootstrapped

SUITE = "bookworm"
BOOT_TIMEOUT = 60.0
"""Seconds systemd has to reach its default target."""
CAPABILITIES = [
    *("CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID"),
    *("SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST"),
    *("NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO"),
    *("SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE"),
    *("SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE"),
    *("AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM"),
    *("BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE"),
]
"""Capabilities by number: the init gets those this process may hand on (a container manager
needs them to sandbox its services)."""


def debian12_systemd() -> Path:
    """The Debian 12 minbase root with systemd, made by debootstrap the first time (a minute
    or two)."""
    return debootstrapped(
        f"debian-12-{SUITE}-systemd", SUITE, "sbin/init", include=("systemd", "systemd-sysv")
    )


def held_capabilities() -> list[str]:
    """The names of this process's bounding set."""
    status = Path("/proc/self/status").read_text().splitlines()
    mask = int(next(line for line in status if line.startswith("CapBnd:")).split()[1], 16)
    return [f"CAP_{name}" for bit, name in enumerate(CAPABILITIES) if mask >> bit & 1]


def runtime_config(rootfs: Path, name: str) -> dict[str, Any]:
    """runc's config for systemd as the init of ``rootfs``: its own mount, pid, ipc and uts
    namespaces, the host's network; ``/run`` and ``/tmp`` tmpfs, shared mounts where systemd
    moves its services' credentials, the cgroup tree writable for it to manage."""
    tmpfs = ["nosuid", "nodev", "shared"]
    caps = held_capabilities()
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": ["/sbin/init"],
            "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "container=runc"],
            "cwd": "/",
            "capabilities": dict.fromkeys(("bounding", "effective", "permitted"), caps),
            "noNewPrivileges": False,
        },
        "root": {"path": str(rootfs), "readonly": False},
        "hostname": "transporter-host",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {
                "destination": "/dev",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
            },
            {
                "destination": "/dev/pts",
                "type": "devpts",
                "source": "devpts",
                "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
            },
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": tmpfs},
            {
                "destination": "/dev/mqueue",
                "type": "mqueue",
                "source": "mqueue",
                "options": ["nosuid", "noexec", "nodev"],
            },
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["rw"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup"},
            {"destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": tmpfs},
            {"destination": "/run/lock", "type": "tmpfs", "source": "tmpfs", "options": tmpfs},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": tmpfs},
        ],
        "linux": {
            "cgroupsPath": f"/{name}",
            "namespaces": [{"type": kind} for kind in ("pid", "ipc", "uts", "mount")],
        },
    }


@attrs.define
class SystemdHost:
    """The booted container: :attr:`root` is its file system as this host sees it."""

    name: str
    root: Path
    bundle: Path

    def path(self, inside: str) -> Path:
        return self.root / inside.lstrip("/")

    def put(self, inside: str, data: bytes, mode: int) -> None:
        """Write a root-owned file, its folders made as needed."""
        target = self.path(inside)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(mode)

    def run(self, *argv: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """``argv`` in the container as root; raises with its output when it fails."""
        done = subprocess.run(
            ["runc", "exec", self.name, *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr}")
        return done

    def show(self, unit: str, prop: str) -> str:
        return self.run("systemctl", "show", "--property", prop, "--value", unit).stdout.strip()

    def main_process_status(self, unit: str) -> dict[str, str]:
        """``/proc/PID/status`` of the unit's main process, as a mapping."""
        pid = self.show(unit, "MainPID")
        lines = self.run("cat", f"/proc/{pid}/status").stdout.splitlines()
        return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}

    @contextlib.contextmanager
    def journal(self, unit: str) -> Iterator[Child]:
        """The unit's journal, all of it and then as it comes (``journalctl --follow``), to
        wait for a line: one the unit writes before the reader starts is not missed."""
        argv = ["runc", "exec", self.name, "journalctl", "--follow", "--no-tail", "-o", "cat"]
        child = Child([*argv, "--unit", unit])
        try:
            yield child
        finally:
            child.stop()

    def boot(self) -> None:
        """Start the container; returns once systemd says it is up (``READY=1``)."""
        notify = self.bundle / "notify.sock"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
            listener.bind(str(notify))
            listener.settimeout(BOOT_TIMEOUT)
            env = {**os.environ, "NOTIFY_SOCKET": str(notify)}
            with (self.bundle / "console.log").open("w") as console:
                for step in (["create", "--bundle", str(self.bundle)], ["start"]):
                    subprocess.run(
                        ["runc", *step, self.name],
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=console,
                        stderr=console,
                        timeout=BOOT_TIMEOUT,
                        check=True,
                    )
            while b"READY=1" not in listener.recv(4096):
                pass


@contextlib.contextmanager
def systemd_host(folder: Path) -> Iterator[SystemdHost]:
    """An overlay of the cached root in ``folder`` (writes go to ``folder/upper``), not yet
    booted: put files in, then :meth:`SystemdHost.boot`. On the way out the container is
    killed and deleted and the overlay unmounted."""
    lower = debian12_systemd()
    merged, upper, work, bundle = (folder / n for n in ("merged", "upper", "work", "bundle"))
    for path in (merged, upper, work, bundle):
        path.mkdir(parents=True)
    options = f"lowerdir={lower},upperdir={upper},workdir={work}"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(merged)], check=True)
    name = f"transporter-host-{uuid.uuid4().hex[:12]}"
    (bundle / "config.json").write_text(json.dumps(runtime_config(merged, name), indent=1))
    try:
        yield SystemdHost(name, merged, bundle)
    finally:
        for argv in (["kill", name, "KILL"], ["delete", "--force", name]):
            subprocess.run(["runc", *argv], capture_output=True, timeout=60, check=False)
        subprocess.run(["umount", "--lazy", str(merged)], capture_output=True, check=False)


if __name__ == "__main__":
    print(debian12_systemd())
