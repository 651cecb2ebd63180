"""The image of ``make image`` (``packaging/image/build``), looked at and run as a container
runtime runs it: built from the single file, read with skopeo, unpacked with umoci into an OCI
runtime bundle, and run by runc (all Debian packages; no container daemon).

:func:`unpack` gives a bundle whose ``config.json`` umoci wrote from the image's own config
(its user, entrypoint, environment); :func:`confine` then makes its root read-only with a tmpfs
at ``/tmp``, in the host's network namespace (the test reaches the ports the program bound), and
:func:`running_container` runs it until the ``with`` block ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs

from tests.bed.process import Child, started

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "packaging" / "image" / "build"
TOOLS = ("umoci", "skopeo", "runc")
TIMEOUT = 300.0
"""Seconds for one tool's run (building copies and compresses the whole file)."""


def missing_tools() -> list[str]:
    """The tools of this module that are not on ``PATH``."""
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def _run(*argv: str | Path) -> str:
    done = subprocess.run(
        [str(arg) for arg in argv], capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    if done.returncode != 0:
        command = " ".join(map(str, argv[:3]))
        raise RuntimeError(f"{command} exited {done.returncode}: {done.stderr}")
    return done.stdout


@attrs.frozen
class Image:
    """An image archive and what skopeo reads in it."""

    archive: Path
    manifest: dict[str, Any]
    config: dict[str, Any]
    """The image's config (``config.User``, ``config.Env``, ...)."""
    build_output: str

    @property
    def annotations(self) -> dict[str, str]:
        found: dict[str, str] = self.manifest.get("annotations", {})
        return found

    def compressed_size(self) -> int:
        """Bytes a registry stores and a node pulls: the layers, the config and the manifest."""
        layers = sum(int(layer["size"]) for layer in self.manifest["layers"])
        raw = _run("skopeo", "inspect", "--raw", f"oci-archive:{self.archive}")
        return layers + int(self.manifest["config"]["size"]) + len(raw.encode())


def build_image(out: Path) -> Image:
    """``packaging/image/build OUT`` from ``dist/transporter``, then read back with skopeo."""
    output = _run(BUILD, out)
    where = f"oci-archive:{out}"
    manifest = json.loads(_run("skopeo", "inspect", "--raw", where))
    config = json.loads(_run("skopeo", "inspect", "--config", where))
    return Image(out, manifest, config, output)


def unpack(image: Image, dest: Path) -> Path:
    """The image unpacked into the runtime bundle ``dest`` (``rootfs/`` and ``config.json``),
    owners as in the image (run as root)."""
    layout = dest.with_name(dest.name + "-layout")
    _run("skopeo", "copy", "--quiet", f"oci-archive:{image.archive}", f"oci:{layout}:image")
    _run("umoci", "unpack", "--image", f"{layout}:image", dest)
    return dest


def confine(
    bundle: Path,
    args: Sequence[str],
    *,
    binds: dict[str, Path],
    env: dict[str, str] | None = None,
    tmpfs_options: Sequence[str] = ("size=128m",),
) -> dict[str, Any]:
    """Edit the bundle's ``config.json``: run ``args`` after the image's entrypoint with ``env``
    added to the image's, the root read-only, a tmpfs at ``/tmp`` (its mode the image's
    ``/tmp``; nosuid, nodev and ``tmpfs_options``), ``binds`` (container path: host folder)
    read-write, no terminal, and the host's network namespace. Returns it."""
    path = bundle / "config.json"
    spec: dict[str, Any] = json.loads(path.read_text())
    process = spec["process"]
    process["args"] = [*process["args"], *args]
    process["env"] = [*process["env"], *(f"{k}={v}" for k, v in (env or {}).items())]
    process["terminal"] = False
    spec["root"]["readonly"] = True
    spec["mounts"].append(
        {
            "destination": "/tmp",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "nodev", *tmpfs_options],
        }
    )
    for inside, outside in binds.items():
        spec["mounts"].append(
            {"destination": inside, "type": "bind", "source": str(outside), "options": ["rbind"]}
        )
    linux = spec["linux"]
    linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] != "network"]
    path.write_text(json.dumps(spec, indent=1))
    return spec


@attrs.frozen
class Container:
    """A container that runc runs in the foreground (``runc run`` passes signals on)."""

    id: str
    child: Child

    def host_pid(self) -> int:
        """The pid of its first process, as the host sees it."""
        state = json.loads(_run("runc", "state", self.id))
        return int(state["pid"])


@contextlib.contextmanager
def running_container(
    bundle: Path, *patterns: re.Pattern[str], stop_timeout: float = 15.0
) -> Iterator[tuple[Container, list[str]]]:
    """``runc run`` of ``bundle`` until every pattern matched its output; yields it and the
    first group of each match. On the way out: SIGTERM (SIGKILL after ``stop_timeout``), and
    the container deleted."""
    name = f"transporter-test-{uuid.uuid4().hex[:12]}"
    argv = ["runc", "run", "--bundle", str(bundle), name]
    try:
        with started(argv, *patterns, stop_timeout=stop_timeout) as (child, found):
            yield Container(name, child), found
    finally:
        subprocess.run(
            ["runc", "delete", "--force", name], capture_output=True, timeout=60, check=False
        )


def is_root() -> bool:
    """Whether this process may unpack owners as they are and run runc with user 65532."""
    return os.geteuid() == 0
