"""The image of ``make image`` (``packaging/image/build``): built from the single file without a
daemon, it holds the file and nothing else it does not need, says what it is in the OCI
annotations, and runs ``transporter cp`` under runc as user 65532 on a read-only root with a
tmpfs ``/tmp``."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.bed.oci import Image, build_image, is_root, missing_tools
from tests.bed.oci import unpack as unpack_image
from transporter import __version__

NONROOT = 65532
MAX_SIZE = 30_000_000
"""Bytes: the image's layers, config and manifest (what a node pulls) stay within 30 MB."""
IMAGE_FILES = {
    "etc/group",
    "etc/passwd",
    "usr/local/bin/transporter",
    "usr/share/doc/transporter/LICENSE",
}
"""Every regular file the image holds."""


def needs(condition: bool, why: str) -> None:
    """Skip when ``condition`` fails, but fail in CI, which has what these tests need."""
    if not condition:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(why)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Image]:
    """The module's image, once it is built."""
    return {}


@pytest.fixture
def image(binary: Path, built: dict[str, Image], tmp_path_factory: pytest.TempPathFactory) -> Image:
    """The image of ``dist/transporter``, built once for this module by the build script."""
    needs(not missing_tools(), f"missing {', '.join(missing_tools())} (Debian packages)")
    if "image" not in built:
        built["image"] = build_image(tmp_path_factory.mktemp("image") / "transporter-image.tar")
    return built["image"]


@pytest.fixture
def unpack(image: Image, tmp_path: Path) -> Callable[[], Path]:
    """Unpack the image into a runtime bundle in ``tmp_path`` (its root: ``rootfs/``)."""
    needs(is_root(), "unpacking an image with its owners and running runc need root")
    return lambda: unpack_image(image, tmp_path / "bundle")


def git_head() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=30, check=False
    )
    return done.stdout.strip() if done.returncode == 0 else "unknown"


def test_the_image_holds_the_file_and_nothing_else(
    binary: Path, unpack: Callable[[], Path]
) -> None:
    rootfs = unpack() / "rootfs"
    files = {p.relative_to(rootfs).as_posix() for p in rootfs.rglob("*") if not p.is_dir()}
    assert files == IMAGE_FILES  # no shell, no package manager, no libraries
    assert not (rootfs / "bin" / "sh").exists()
    assert (rootfs / "usr/local/bin/transporter").read_bytes() == binary.read_bytes()
    tmp = (rootfs / "tmp").stat()
    assert (oct(tmp.st_mode & 0o7777), tmp.st_uid) == (oct(0o1777), 0)
    data = (rootfs / "var/lib/transporter").stat()
    assert (oct(data.st_mode & 0o777), data.st_uid, data.st_gid) == (oct(0o700), NONROOT, NONROOT)
    passwd = (rootfs / "etc/passwd").read_text().splitlines()
    users = {line.split(":")[0]: line.split(":")[2:4] for line in passwd}
    assert users["nonroot"] == [str(NONROOT), str(NONROOT)]
    assert f"nonroot:x:{NONROOT}:" in (rootfs / "etc/group").read_text().splitlines()


def test_the_image_says_what_it_is_and_runs_as_nonroot(image: Image) -> None:
    config = image.config["config"]
    assert config["User"] == f"{NONROOT}:{NONROOT}"
    assert config["Entrypoint"] == ["/usr/local/bin/transporter"]
    assert "Cmd" not in config
    assert "TRANSPORTER_DATA_DIR=/var/lib/transporter" in config["Env"]
    assert set(config["ExposedPorts"]) == {"8080/tcp", "8443/tcp"}
    assert (image.config["os"], image.config["architecture"]) == ("linux", "amd64")
    notes = image.annotations
    prefix = "org.opencontainers.image."
    assert notes[prefix + "version"] == __version__
    assert notes[prefix + "revision"] == git_head()
    assert notes[prefix + "licenses"] == "MIT"
    assert notes[prefix + "title"] == "transporter"
    assert notes[prefix + "source"]
    assert notes[prefix + "description"]
    assert notes[prefix + "created"] == image.config["created"]
    assert config["Labels"] == notes  # `docker inspect` shows the same
    size = image.compressed_size()
    print(f"image: {size / 1e6:.1f} MB compressed ({image.build_output.strip()})")
    assert size <= MAX_SIZE


def test_the_same_inputs_build_the_same_image(image: Image, tmp_path: Path) -> None:
    again = build_image(tmp_path / "again.tar")
    assert again.archive.read_bytes() == image.archive.read_bytes()
