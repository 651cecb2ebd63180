"""The image of ``make image`` (``packaging/image/build``): built from the single file without a
daemon, it holds the file and nothing else it does not need, says what it is in the OCI
annotations, and runs ``transporter cp`` under runc as user 65532 on a read-only root with a
tmpfs ``/tmp``."""

from __future__ import annotations

import os
import re
import signal
import ssl
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.bed.oci import Image, build_image, confine, is_root, missing_tools, running_container
from tests.bed.oci import unpack as unpack_image
from tests.bed.roles import API_LISTENING
from transporter import __version__

NONROOT = 65532
LAUNCH_FAILED = 126
"""The exit code of the single file when it cannot start its program (before Python)."""
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


def test_cp_serves_from_the_image_on_a_read_only_root_as_nonroot(
    unpack: Callable[[], Path], tmp_path: Path
) -> None:
    """As a hardened pod runs it: root read-only, a tmpfs /tmp, user 65532, its data on a
    mounted folder (the image's TRANSPORTER_DATA_DIR); /readyz over the HTTPS it serves by
    default, then a clean stop on SIGTERM."""
    bundle = unpack()
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    os.chown(data, NONROOT, NONROOT)
    listen = ["--listen", "127.0.0.1:0", "--agent-listen", "127.0.0.1:0"]
    text_logs = {"TRANSPORTER_LOG_FORMAT": "text"}  # what API_LISTENING reads
    confine(bundle, ["cp", *listen], binds={"/var/lib/transporter": data}, env=text_logs)
    with running_container(bundle, API_LISTENING) as (container, (url,)):
        pid = container.host_pid()
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
        uids = next(line for line in status if line.startswith("Uid:")).split()[1:]
        assert uids == [str(NONROOT)] * 4
        mounts = Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
        root = next(line.split() for line in mounts if line.split()[4] == "/")
        assert "ro" in root[5].split(",")
        trust = ssl.create_default_context(cafile=str(data / "ca.crt"))
        with urllib.request.urlopen(f"{url}/readyz", timeout=10, context=trust) as answer:
            assert answer.status == 200
        assert container.child.stop(signal.SIGTERM) == 0
    assert "Traceback" not in container.child.output
    assert (data / "transporter.db").is_file()


def test_a_noexec_tmp_says_which_variable_to_set(
    unpack: Callable[[], Path], tmp_path: Path
) -> None:
    """``docker run --tmpfs /tmp`` mounts it noexec: the file cannot run what it unpacks
    there, and says in one line what to set; set, it runs."""
    bundle = unpack()
    config = (bundle / "config.json").read_text()
    confine(bundle, ["--version"], binds={}, tmpfs_options=["noexec", "size=128m"])
    with running_container(bundle, re.compile(r"(.+)")) as (container, (line,)):
        assert container.child.popen.wait(60) == LAUNCH_FAILED
    assert container.child.lines == [line + "\n"]
    assert "mounted noexec" in line
    assert "set TRANSPORTER_UNPACK_DIR" in line
    (bundle / "config.json").write_text(config)
    unpack_dir = tmp_path / "unpack"
    unpack_dir.mkdir(mode=0o700)
    os.chown(unpack_dir, NONROOT, NONROOT)
    env = {"TRANSPORTER_UNPACK_DIR": "/unpack"}
    binds = {"/unpack": unpack_dir}
    confine(bundle, ["--version"], binds=binds, env=env, tmpfs_options=["noexec"])
    with running_container(bundle, re.compile(r"^(transporter \S+)")) as (container, (name,)):
        assert container.child.popen.wait(60) == 0
    assert name == f"transporter {__version__}"
