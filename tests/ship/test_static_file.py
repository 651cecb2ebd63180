"""The single file (``make binary``) as operators run it: in a root holding only the file and
``/tmp``, and in a Debian 11 root (glibc 2.31), as uid 65532; unpacked once, then started from
its folder without writing anything; and every way its launcher can refuse, in one line.

They need root (chroot, mount namespaces, another uid), as CI runs them."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import urllib.request
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.bed.kube import Cluster
from tests.bed.pki import shared
from tests.bed.process import started
from tests.bed.redis import RedisServer
from tests.bed.roles import (
    AGENT_LISTENING,
    API_LISTENING,
    PYTHON_TRANSPORTER,
    REGISTERED,
    clean_environment,
    create_bundle,
    create_token,
)
from tests.bed.roots import Root, debian_root, empty_root
from tests.bed.unpacked import EXTENSION, module_names, unpack

LAUNCH_FAILED = 126
"""The launcher's exit code when it cannot run the program (README, exit codes)."""

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: chroot, mounts, uids")


def run(argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, check=False)


def one_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


# --- what is in it --------------------------------------------------------------------------


def test_the_file_holds_glibc_and_no_gnu_readline(binary: Path, tmp_path: Path) -> None:
    """glibc's loader and libc are beside the program, which is what lets it run anywhere;
    GNU readline (GPL) is in no form (tests/kube/test_client.py checks the other exclusions)."""
    names = module_names(unpack(binary, tmp_path / "unpack"))
    assert {"libc", "ld-linux-x86-64", "libpython3"} <= {n.split(".")[0] for n in names}
    assert "transporter.kube.client" in names
    # Lazy members are in it too: a compiled module, and a package of the lazy zip.
    assert {"cryptography.hazmat.bindings._rust", "quart.app"} <= set(names)
    assert [n for n in names if "readline" in n] == []


# --- the roots ---------------------------------------------------------------------------


@pytest.fixture(params=["empty", "debian-11"])
def root(request: pytest.FixtureRequest, binary: Path, tmp_path: Path) -> Root:
    if request.param == "empty":
        return empty_root(tmp_path / "root", binary)
    return debian_root(tmp_path / "debian", binary)


def test_version_in_the_root_as_65532(root: Root) -> None:
    first = run(root.argv("--version"))
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("transporter ")
    assert first.stderr == ""
    unpacked = root.host_path("/tmp/transporter-65532")
    assert unpacked.stat().st_uid == 65532
    assert unpacked.stat().st_mode & 0o777 == 0o700
    again = run(root.argv("--version"))
    assert (again.returncode, again.stdout) == (0, first.stdout)


@contextmanager
def cp_in(root: Root) -> Iterator[tuple[str, str, ssl.SSLContext]]:
    """``transporter cp`` in ``root`` as 65532: its API URL, agent URL and a TLS context that
    trusts its CA."""
    argv = root.argv(
        "cp",
        "--listen",
        "127.0.0.1:0",  # no /etc/hosts in the empty root
        "--agent-listen",
        "127.0.0.1:0",
        "--data-dir",
        "/tmp/cp",
        env=["TRANSPORTER_LOG_FORMAT=text"],
    )
    with started(argv, API_LISTENING, AGENT_LISTENING) as (cp, (api, agents)):
        context = ssl.create_default_context(cafile=str(root.host_path("/tmp/cp/ca.crt")))
        yield api, agents, context
        assert cp.stop(signal.SIGTERM) == 0, cp.tail()
    assert "Traceback" not in cp.output


def test_cp_and_agent_in_the_root_as_65532(root: Root, cluster: Cluster, tmp_path: Path) -> None:
    """A control plane serves /readyz; an agent of the same file, with a bundle made by
    ``bundle create`` there, registers with it; and an event produced with a token made by
    ``token create`` there is applied on the test bed's cluster."""
    with cp_in(root) as (api, agents, context):
        with urllib.request.urlopen(f"{api}/readyz", timeout=10, context=context) as answer:
            assert answer.status == 200
        store = ["--data-dir", "/tmp/cp"]
        made = run(root.argv("bundle", "create", "--agent-id", "site-1", *store, "--out", "/tmp/b"))
        assert made.returncode == 0, made.stderr
        token = run(root.argv("token", "create", "--name", "t", "--role", "admin", *store))
        assert token.returncode == 0, token.stderr
        kubeconfig = root.host_path("/tmp/kubeconfig")
        shutil.copyfile(cluster.kubeconfig, kubeconfig)
        kubeconfig.chmod(0o644)
        agent_argv = root.argv(
            "agent",
            "--bundle",
            "/tmp/b",
            "--cp-url",
            agents,
            "--kubeconfig",
            "/tmp/kubeconfig",
            env=["TRANSPORTER_LOG_FORMAT=text"],
        )
        name = f"static-{uuid.uuid4().hex[:10]}"
        manifest = tmp_path / "cm.yaml"
        manifest.write_text(f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\n")
        produce = [*PYTHON_TRANSPORTER, "produce", "k8s", "--cp-url", api, "--agent", "site-1"]
        produce += ["--ca-cert", str(root.host_path("/tmp/cp/ca.crt")), "--manifest", str(manifest)]
        with started(agent_argv, REGISTERED) as (agent, _):
            done = run(
                [*produce, "--wait", "-o", "json"],
                TRANSPORTER_TOKEN=token.stdout.strip(),
                PATH=os.environ.get("PATH", ""),
            )
            assert done.returncode == 0, done.stderr + agent.output
            assert agent.stop(signal.SIGTERM) == 0, agent.tail()
        assert "Traceback" not in agent.output
    shown = json.loads(done.stdout)
    assert (shown["state"], [r["name"] for r in shown["resources"]]) == ("completed", [name])


# --- unpacked once --------------------------------------------------------------------------


def snapshot(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under ``folder`` (itself included): inode, mtime, size."""
    found = {}
    for path in [folder, *folder.rglob("*")]:
        info = path.lstat()
        found[str(path)] = (info.st_ino, info.st_mtime_ns, info.st_size)
    return found


def test_a_second_start_writes_nothing(binary: Path, tmp_path: Path) -> None:
    unpack_dir = tmp_path / "unpack"
    first = run([str(binary), "--version"], TRANSPORTER_UNPACK_DIR=str(unpack_dir))
    assert first.returncode == 0, first.stderr
    before = snapshot(unpack_dir)
    assert len(before) > 100  # the program, its libraries, glibc
    second = run([str(binary), "--version"], TRANSPORTER_UNPACK_DIR=str(unpack_dir))
    assert (second.returncode, second.stdout) == (0, first.stdout)
    assert snapshot(unpack_dir) == before


def test_a_concurrent_first_start_ends_with_one_folder(binary: Path, tmp_path: Path) -> None:
    unpack_dir = tmp_path / "unpack"
    env = {"TRANSPORTER_UNPACK_DIR": str(unpack_dir)}
    starts = [
        subprocess.Popen(
            [str(binary), "--version"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        for _ in range(6)
    ]
    results = [(p.wait(120), *p.communicate()) for p in starts]
    assert [(code, err) for code, _, err in results] == [(0, b"")] * 6
    (folder,) = unpack_dir.iterdir()  # no copy of a start that lost the race is left
    assert re.fullmatch(r"[0-9a-f]{64}", folder.name)
    assert (folder / ".complete").is_file()


# --- refusals -----------------------------------------------------------------------------


def test_a_noexec_temp_folder_is_named_with_the_fix(binary: Path, tmp_path: Path) -> None:
    root = empty_root(tmp_path / "root", binary)
    noexec = f"mount -t tmpfs -o noexec,mode=1777 tmpfs {root.path}/tmp"
    done = run(root.argv("--version", before=noexec))
    assert done.returncode == LAUNCH_FAILED
    assert one_line(done.stderr) == (
        "transporter: cannot run programs from /tmp/transporter-65532 (mounted noexec): "
        "set TRANSPORTER_UNPACK_DIR to a folder on a mount that allows exec"
    )
    named = run(root.argv("--version", env=["TRANSPORTER_UNPACK_DIR=/tmp/x"], before=noexec))
    assert named.returncode == LAUNCH_FAILED
    assert "cannot run programs from /tmp/x (mounted noexec)" in one_line(named.stderr)


def test_no_writable_temp_folder_is_named_with_the_fix(binary: Path, tmp_path: Path) -> None:
    root = empty_root(tmp_path / "root", binary)
    (root.path / "tmp").chmod(0o755)  # root's: 65532 cannot write there
    done = run(root.argv("--version", env=["HOME=/nonexistent"]))
    assert done.returncode == LAUNCH_FAILED
    assert one_line(done.stderr) == (
        "transporter: no writable folder to unpack into (tried /nonexistent/.cache/transporter"
        " (Permission denied), /tmp/transporter-65532 (Permission denied)):"
        " set TRANSPORTER_UNPACK_DIR"
    )


def test_a_planted_symlink_in_shared_temp_is_refused(binary: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (tmp_path / "transporter-0").symlink_to(elsewhere)
    done = run([str(binary), "--version"], TMPDIR=str(tmp_path))
    assert done.returncode == LAUNCH_FAILED
    assert one_line(done.stderr) == (
        f"transporter: refusing to unpack into {tmp_path}/transporter-0: it is not a folder"
        " (a symlink?): remove it or set TRANSPORTER_UNPACK_DIR"
    )
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize(
    ("owner", "mode", "why"),
    [(65533, 0o700, "it belongs to uid 65533, not to us (uid 0)"), (0, 0o755, "its mode is 755")],
)
def test_a_folder_in_shared_temp_not_ours_alone_is_refused(
    binary: Path, tmp_path: Path, owner: int, mode: int, why: str
) -> None:
    planted = tmp_path / "transporter-0"
    planted.mkdir()
    os.chown(planted, owner, owner)
    planted.chmod(mode)
    done = run([str(binary), "--version"], TMPDIR=str(tmp_path))
    assert done.returncode == LAUNCH_FAILED
    said = one_line(done.stderr)
    assert said.startswith(f"transporter: refusing to unpack into {planted}: {why}")
    assert list(planted.iterdir()) == []


def test_another_users_folder_in_shared_temp_does_not_stop_a_start_with_a_cache(
    binary: Path, tmp_path: Path
) -> None:
    """Another user can make our name in a shared /tmp (sticky: we cannot remove it); the cache
    folder, tried first, is used all the same, and the planted folder is left alone."""
    planted = tmp_path / "transporter-0"
    planted.mkdir(mode=0o777)
    os.chown(planted, 65533, 65533)
    home = tmp_path / "home"
    home.mkdir()
    done = run([str(binary), "--version"], TMPDIR=str(tmp_path), HOME=str(home))
    assert done.returncode == 0, done.stderr
    assert [p.name for p in (home / ".cache" / "transporter").iterdir()] != []
    assert list(planted.iterdir()) == []


def test_starts_in_other_pid_namespaces_unpack_into_one_folder_at_once(
    binary: Path, tmp_path: Path
) -> None:
    """Containers sharing an unpack folder (a volume) each start as pid 1: their copies being
    unpacked must not share a name (each wrote into, and removed, the other's; one left a
    folder named complete with files missing)."""
    for attempt in range(4):
        shared = tmp_path / f"shared-{attempt}"
        argv = ["unshare", "--pid", "--fork", str(binary), "--version"]
        env = {"TRANSPORTER_UNPACK_DIR": str(shared)}
        starts = [
            subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(3)
        ]
        said = [start.communicate(timeout=120)[1].decode() for start in starts]
        assert [start.returncode for start in starts] == [0, 0, 0], said
        assert len(list(shared.iterdir())) == 1  # the folder, no copy left behind
        assert run([str(binary), "--version"], **env).returncode == 0


def payload_hash(binary: Path) -> str:
    """The name of the folder ``binary`` unpacks into: the last field of its trailer."""
    with binary.open("rb") as f:
        f.seek(-160, os.SEEK_END)
        return f.read().split()[3].decode()


def plant(folder: Path, proof: Path) -> None:
    """A folder that looks unpacked (``.complete``) whose program, run, writes ``proof``."""
    folder.mkdir()
    (folder / ".complete").touch()
    (folder / "transporter").write_text(f"#!/bin/sh\ntouch {proof}\n")
    (folder / "transporter").chmod(0o755)


@pytest.mark.parametrize(
    ("root_mode", "owner", "mode", "link", "why"),
    [
        (0o755, 65533, 0o755, False, "{folder} belongs to uid 65533, not to us (uid 0) or root"),
        (0o755, 0, 0o777, False, "{folder} has mode 777: others may write to it"),
        (0o755, 0, 0o755, True, "{folder} is not a folder (a symlink?)"),
        (0o777, 0, 0o755, False, "its mode 777 lets others replace what is in it"),
        (0o1777, 65533, 0o755, False, "{folder} belongs to uid 65533, not to us (uid 0) or root"),
    ],
    ids=["others-folder", "writable-folder", "symlink", "writable-root", "sticky-root"],
)
def test_an_unpacked_folder_others_could_have_planted_is_not_run(
    binary: Path, tmp_path: Path, root_mode: int, owner: int, mode: int, link: bool, why: str
) -> None:
    """The folder's name is public (the trailer): in an unpack folder others can write to, or
    as a folder of theirs, a planted ``<hash>/.complete`` and program are refused, not run."""
    root, proof = tmp_path / "unpack", tmp_path / "ran"
    root.mkdir()
    root.chmod(root_mode)
    folder = root / payload_hash(binary)
    if link:
        plant(tmp_path / "planted", proof)
        folder.symlink_to(tmp_path / "planted")
    else:
        plant(folder, proof)
        os.chown(folder, owner, owner)
        folder.chmod(mode)
    done = run([str(binary), "--version"], TRANSPORTER_UNPACK_DIR=str(root))
    assert not proof.exists(), "the planted program ran"
    assert done.returncode == LAUNCH_FAILED, done.stderr
    assert one_line(done.stderr) == (
        f"transporter: refusing to run the program in {root}: {why.format(folder=folder)}:"
        " remove it, or set TRANSPORTER_UNPACK_DIR to a folder of yours"
    )


def test_an_unpack_folder_others_can_write_to_is_not_unpacked_into(
    binary: Path, tmp_path: Path
) -> None:
    """Not sticky: others could replace the folder between its unpacking and its start."""
    root = tmp_path / "unpack"
    root.mkdir()
    root.chmod(0o777)
    done = run([str(binary), "--version"], TRANSPORTER_UNPACK_DIR=str(root))
    assert done.returncode == LAUNCH_FAILED
    assert one_line(done.stderr) == (
        f"transporter: refusing to unpack into {root} (TRANSPORTER_UNPACK_DIR): its mode 777"
        " lets others replace what is in it: set it to a folder of yours"
    )
    assert list(root.iterdir()) == []


def test_a_sticky_unpack_folder_holding_our_folder_is_used(binary: Path, tmp_path: Path) -> None:
    root = tmp_path / "unpack"
    root.mkdir()
    root.chmod(0o1777)
    for _ in range(2):  # unpacked, then found
        done = run([str(binary), "--version"], TRANSPORTER_UNPACK_DIR=str(root))
        assert done.returncode == 0, done.stderr


def test_a_folder_that_lost_its_complete_marker_is_unpacked_again(
    binary: Path, tmp_path: Path
) -> None:
    """A temp cleaner removed ``.complete`` (nothing reads it: its atime ages): the folder,
    ours, is moved aside and removed, and the start unpacks it anew."""
    root = tmp_path / "unpack"
    folder = unpack(binary, root, everything=False)
    (folder / ".complete").unlink()
    (folder / "transporter").unlink()  # and some of what it held
    done = run([str(binary), "--version"], TRANSPORTER_UNPACK_DIR=str(root))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("transporter ")
    assert [p.name for p in root.iterdir()] == [folder.name]  # nothing stale left
    assert (folder / ".complete").is_file()
    assert (folder / "transporter").is_file()


def test_an_incomplete_folder_not_ours_is_left_alone(binary: Path, tmp_path: Path) -> None:
    root = tmp_path / "unpack"
    folder = unpack(binary, root, everything=False)
    (folder / ".complete").unlink()
    os.chown(folder, 65533, 65533)
    done = run([str(binary), "--version"], TRANSPORTER_UNPACK_DIR=str(root))
    assert done.returncode == LAUNCH_FAILED
    assert folder.stat().st_uid == 65533


def test_a_damaged_file_says_so(binary: Path, tmp_path: Path) -> None:
    cut = tmp_path / "transporter"
    cut.write_bytes(binary.read_bytes()[: binary.stat().st_size // 2])
    cut.chmod(0o755)
    done = run([str(cut), "--version"], TRANSPORTER_UNPACK_DIR=str(tmp_path / "unpack"))
    assert done.returncode == LAUNCH_FAILED
    assert one_line(done.stderr) == (
        f"transporter: {cut} is damaged (no payload trailer): download it again"
    )


def test_an_unpack_folder_too_long_for_the_loader_path_is_refused(
    binary: Path, tmp_path: Path
) -> None:
    """The program's PT_INTERP has room for an unpack folder of up to 399 bytes."""
    long = tmp_path / ("x" * 200) / ("y" * (399 - len(str(tmp_path)) - 202))
    assert len(str(long)) == 399
    fits = run([str(binary), "--version"], TRANSPORTER_UNPACK_DIR=str(long))
    assert fits.returncode == 0, fits.stderr
    too_long = Path(f"{long}z")
    done = run([str(binary), "--version"], TRANSPORTER_UNPACK_DIR=str(too_long))
    assert done.returncode == LAUNCH_FAILED
    assert one_line(done.stderr) == (
        f"transporter: the unpack folder's path {too_long} is too long (at most 399 bytes):"
        " set TRANSPORTER_UNPACK_DIR to a shorter one"
    )
    assert list(too_long.iterdir()) == []  # its half-unpacked copy removed


def test_a_corrupted_payload_is_refused_and_nothing_is_left(binary: Path, tmp_path: Path) -> None:
    """A byte changed in the payload: inflating fails, or a record makes no sense, or the
    checksum at the end fails, before the folder is named complete; the half-unpacked copy
    goes."""
    data = bytearray(binary.read_bytes())
    trailer = data[-160:].decode().split()
    assert trailer[0] == "TRANSPORTER-PAYLOAD-1"
    offset, length = int(trailer[1]), int(trailer[2])
    data[offset + length // 2] ^= 0xFF
    corrupted = tmp_path / "transporter"
    corrupted.write_bytes(data)
    corrupted.chmod(0o755)
    unpack_dir = tmp_path / "unpack"
    done = run([str(corrupted), "--version"], TRANSPORTER_UNPACK_DIR=str(unpack_dir))
    assert done.returncode == LAUNCH_FAILED
    assert re.fullmatch(
        rf"transporter: {corrupted} is damaged \([^()]+\): download it again",
        one_line(done.stderr),
    )
    assert list(unpack_dir.iterdir()) == []


# --- lazy members: unpacked on first use ------------------------------------------------------

LAZY_INDEX = "_internal/transporter-lazy.txt"
"""The index of the members the launcher does not unpack (packaging/launcher/pack.py)."""
RUST = "_internal/cryptography/hazmat/bindings/_rust.abi3.so"


def lazy_members(folder: Path) -> list[str]:
    """The lazy files the index of the unpacked ``folder`` names."""
    lines = (folder / LAZY_INDEX).read_text().splitlines()
    return [line.split()[1] for line in lines if line.startswith("F ")]


def present(folder: Path) -> list[str]:
    return [name for name in lazy_members(folder) if (folder / name).exists()]


def leftovers(folder: Path) -> list[Path]:
    """Temporary files of an extraction (``.NAME.partial-PID-RANDOM``)."""
    return list(folder.rglob(".*.partial-*"))


def mapped(pid: int, folder: Path) -> set[str]:
    """The files of ``folder`` the process ``pid`` has mapped (its loaded libraries)."""
    maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
    paths = {line.split(maxsplit=5)[5] for line in maps if len(line.split(maxsplit=5)) == 6}
    return {str(Path(p).relative_to(folder)) for p in paths if p.startswith(f"{folder}/")}


def bundle_create(binary: Path, unpack_dir: Path, data_dir: Path, out: Path) -> list[str]:
    """``bundle create`` of the file (a CA read with cryptography, the store's SQLite) in a
    new ``data_dir`` holding the test run's CA and signing key: the command, run with
    ``TRANSPORTER_UNPACK_DIR=unpack_dir``."""
    data_dir.mkdir(mode=0o700)
    for made in (shared().ca_cert, shared().ca_key, shared().signing_key):
        shutil.copy2(made, data_dir / made.name)
    flags = ["--agent-id", "site-1", "--data-dir", str(data_dir), "--out", str(out)]
    return ["env", f"TRANSPORTER_UNPACK_DIR={unpack_dir}", str(binary), "bundle", "create", *flags]


def produce_one(
    command: list[str], api: str, tmp_path: Path, extra_env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """A ConfigMap for site-1, produced by ``command`` through the control plane whose data
    folder is ``tmp_path / "cp"``, waited for: ``-o json``."""
    token = create_token("--data-dir", str(tmp_path / "cp"))
    manifest = tmp_path / "cm.yaml"
    name = f"lazy-{uuid.uuid4().hex[:10]}"
    manifest.write_text(f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\n")
    produce = [*command, "produce", "k8s", "--cp-url", api, "--agent", "site-1"]
    produce += ["--ca-cert", str(tmp_path / "cp" / "ca.crt"), "--manifest", str(manifest)]
    return subprocess.run(
        [*produce, "--wait", "-o", "json"],
        capture_output=True,
        text=True,
        env=clean_environment() | {"TRANSPORTER_TOKEN": token} | extra_env,
        timeout=120,
        check=False,
    )


def test_an_agent_unpacks_no_lazy_member_and_a_later_cp_the_rest(
    binary: Path, cluster: Cluster, tmp_path: Path
) -> None:
    """``--version``, ``completion`` and the file's agent, started first in a fresh folder;
    the agent registers and applies an event that the file's ``produce`` sends and follows,
    with no lazy member on disk, and maps only core files (its process's maps); a ``cp`` of
    the file started later in the same folder extracts what it needs (cryptography for the
    child that reads its keys, SQLite for its store) and serves, cryptography never mapped in
    its own process."""
    unpack_dir = tmp_path / "unpack"
    cp_argv = [*PYTHON_TRANSPORTER, "cp", "--listen", "127.0.0.1:0", "--agent-listen"]
    cp_argv += ["127.0.0.1:0", "--data-dir", str(tmp_path / "cp")]
    env = clean_environment()
    with started(cp_argv, API_LISTENING, AGENT_LISTENING, env=env) as (_, (api, agents)):
        bundle = create_bundle(tmp_path / "cp", "site-1", tmp_path / "bundle")
        agent_argv = [str(binary), "agent", "--bundle", str(bundle), "--cp-url", agents]
        agent_argv += ["--kubeconfig", str(cluster.kubeconfig)]
        agent_env = env | {"TRANSPORTER_UNPACK_DIR": str(unpack_dir)}
        for command in (["--version"], ["completion", "bash"], ["agent", "--help"]):
            assert run([str(binary), *command], **agent_env).returncode == 0
        with started(agent_argv, REGISTERED, env=agent_env) as (agent, _):
            (folder,) = unpack_dir.iterdir()
            assert present(folder) == [], "an agent's start extracted lazy members"
            done = produce_one([str(binary)], api, tmp_path, agent_env)
            assert done.returncode == 0, done.stderr + agent.output
            assert json.loads(done.stdout)["state"] == "completed"
            assert present(folder) == [], "the event (the file's produce) extracted members"
            loaded = mapped(agent.pid, folder)
            assert "_internal/libpython3.13.so.1.0" in loaded
            assert loaded.isdisjoint(lazy_members(folder))
            assert agent.stop(signal.SIGTERM) == 0, agent.tail()
    assert len(lazy_members(folder)) > 10
    with started(
        [str(binary), *cp_argv[3:-1], str(tmp_path / "cp-file")],
        API_LISTENING,
        env=agent_env,
    ) as (cp, (api,)):
        context = ssl.create_default_context(cafile=str(tmp_path / "cp-file" / "ca.crt"))
        with urllib.request.urlopen(f"{api}/readyz", timeout=10, context=context) as answer:
            assert answer.status == 200
        assert RUST in present(folder)
        assert "_internal/libsqlite3.so.0" in present(folder)
        assert RUST not in mapped(cp.pid, folder)  # its key files' child's alone
        assert cp.stop(signal.SIGTERM) == 0, cp.tail()
    assert leftovers(folder) == []


def test_a_lazy_member_once_there_is_not_written_again(binary: Path, tmp_path: Path) -> None:
    unpack_dir = tmp_path / "unpack"
    first = run(bundle_create(binary, unpack_dir, tmp_path / "cp", tmp_path / "b1"))
    assert first.returncode == 0, first.stderr
    (folder,) = unpack_dir.iterdir()
    assert RUST in present(folder)
    before = snapshot(unpack_dir)
    again = run(bundle_create(binary, unpack_dir, tmp_path / "cp2", tmp_path / "b2"))
    assert again.returncode == 0, again.stderr
    assert snapshot(unpack_dir) == before


def test_concurrent_extractions_of_a_member_end_well(binary: Path, tmp_path: Path) -> None:
    """Six starts at once in a fresh folder, each needing cryptography: every one succeeds,
    the member is whole, and no temporary file is left."""
    unpack_dir = tmp_path / "unpack"
    starts = [
        subprocess.Popen(
            bundle_create(binary, unpack_dir, tmp_path / f"cp{n}", tmp_path / f"b{n}"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for n in range(6)
    ]
    results = [(p.wait(120), p.communicate()[1]) for p in starts]
    assert [code for code, _ in results] == [0] * 6, results
    (folder,) = unpack_dir.iterdir()
    assert leftovers(folder) == []
    index = (folder / LAZY_INDEX).read_text().splitlines()
    (digest,) = [line.split()[6] for line in index if line.split()[1:2] == [RUST]]
    assert hashlib.sha256((folder / RUST).read_bytes()).hexdigest() == digest


def recompressed_with_a_byte_changed(blob: bytes) -> bytes:
    """A deflated member with one byte of what it holds changed, deflated again to the same
    length, so that only the member's SHA-256 in the index can tell."""
    original = zlib.decompress(blob)
    for position in range(len(original) - 1, max(0, len(original) - 400), -1):
        changed = bytearray(original)
        changed[position] ^= 0x01
        if len(again := zlib.compress(bytes(changed), 9)) == len(blob):
            return again
    raise AssertionError("no byte whose change keeps the deflated length")


@pytest.mark.parametrize(
    ("member", "how", "why"),
    [
        ("_internal/libsqlite3.so.0", "recompressed", "SHA-256 mismatch"),
        (RUST, "flipped", "Error -3 while decompressing data: [a-z ]+"),
    ],
)
def test_a_tampered_lazy_member_is_refused(
    binary: Path, tmp_path: Path, member: str, how: str, why: str
) -> None:
    """A lazy member changed in the file: the core unpacks (its hash covers the members'
    SHA-256 in the index, not their bytes) and ``--version`` runs, but the start that needs
    the member is refused in one line, and nothing of it is left. ``recompressed``: valid
    deflate of other bytes (the SHA-256 tells); ``flipped``: a byte of the deflate stream."""
    unpack_dir = tmp_path / "unpack"
    folder = unpack(binary, unpack_dir, everything=False)
    data = bytearray(binary.read_bytes())
    offset, length = (int(n) for n in data[-160:].decode().split()[1:3])
    index = (folder / LAZY_INDEX).read_text().splitlines()
    (fields,) = [line.split() for line in index if line.split()[1:2] == [member]]
    start, size = offset + length + int(fields[2]), int(fields[3])
    if how == "recompressed":
        data[start : start + size] = recompressed_with_a_byte_changed(bytes(data[start:][:size]))
    else:
        data[start + size // 2] ^= 0x01
    tampered = tmp_path / "transporter"
    tampered.write_bytes(data)
    tampered.chmod(0o755)
    done = run(bundle_create(tampered, unpack_dir, tmp_path / "cp", tmp_path / "b"))
    assert done.returncode == LAUNCH_FAILED, done.stderr
    assert re.fullmatch(
        rf"transporter: {tampered} is damaged \(member {member}: {why}\): download it again",
        one_line(done.stderr),
    )
    assert member not in present(folder)
    assert leftovers(folder) == []


def run_read_only(folder: Path, command: list[str]) -> subprocess.CompletedProcess[str]:
    """``command`` with ``folder`` mounted read-only (in a mount namespace of its own)."""
    read_only = f"mount --bind {folder} {folder} && mount -o remount,bind,ro {folder}"
    script = f'{read_only} && exec "$@"'
    return run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", *command])


def test_a_read_only_core_only_folder_names_the_fix(binary: Path, tmp_path: Path) -> None:
    """A folder unpacked by ``--version`` (the core only), then mounted read-only, as an image
    could hold it: a command that needs a lazy member says, in one line, what to set."""
    unpack_dir = tmp_path / "unpack"
    folder = unpack(binary, unpack_dir, everything=False)
    done = run_read_only(
        unpack_dir, bundle_create(binary, unpack_dir, tmp_path / "cp", tmp_path / "b")
    )
    assert done.returncode == LAUNCH_FAILED, done.stderr
    said = re.fullmatch(
        rf"transporter: cannot unpack (\S+) into {folder}: Read-only file system:"
        " set TRANSPORTER_UNPACK_DIR to a writable folder",
        one_line(done.stderr),
    )
    assert said is not None, done.stderr
    assert said[1] in lazy_members(folder)


def test_a_core_only_folder_of_root_run_as_65532_names_the_fix(
    binary: Path, tmp_path: Path
) -> None:
    """An image's folder unpacked by root (the core only) and run as 65532: the launcher runs
    it (root's, writable by no one else), and a start that needs a lazy member says what fixes
    it, in one line."""
    root = empty_root(tmp_path / "root", binary)
    unpacked = root.argv("--version", user="0:0", env=["TRANSPORTER_UNPACK_DIR=/unpack"])
    assert run(unpacked).returncode == 0
    (root.path / "unpack").chmod(0o755)
    version = run(root.argv("--version", env=["TRANSPORTER_UNPACK_DIR=/unpack"]))
    assert version.returncode == 0, version.stderr
    cp = ["cp", "--listen", "127.0.0.1:0", "--agent-listen", "127.0.0.1:0", "--data-dir", "/tmp/cp"]
    done = run(root.argv(*cp, env=["TRANSPORTER_UNPACK_DIR=/unpack"]))
    assert done.returncode == LAUNCH_FAILED, done.stderr
    assert re.fullmatch(
        r"transporter: refusing to unpack into /unpack/[0-9a-f]{64}/_internal\S*: it belongs to"
        r" uid 0 with mode 755: set TRANSPORTER_UNPACK_DIR to a folder of yours, or unpack"
        r" everything where it is made \(TRANSPORTER_UNPACK_ALL=1, as for an image\)",
        one_line(done.stderr),
    ), done.stderr


HOOK = Path(__file__).parents[2] / "packaging" / "launcher" / "rthook_lazy.py"


def lazy_finder(folder: Path, file: Path) -> Any:
    """The runtime hook's finder of ``folder`` (unpacked from ``file``), as the program makes
    it at its start; the hook itself, run here, installs nothing (no ``sys._MEIPASS``)."""
    spec = importlib.util.spec_from_file_location("rthook_lazy_under_test", HOOK)
    assert spec is not None and spec.loader is not None
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    return hook._LazyFinder(str(folder), str(folder / LAZY_INDEX), str(file))


RUST_MODULE = "cryptography.hazmat.bindings._rust"


def test_a_running_program_reads_the_file_it_started_from(binary: Path, tmp_path: Path) -> None:
    """The file replaced in place after the start (``install`` makes a new inode, as an
    upgrade does): a lazy member is still read, and checked, from the file the program
    started from."""
    file = tmp_path / "transporter"
    shutil.copy2(binary, file)
    folder = unpack(file, tmp_path / "unpack", everything=False)
    finder = lazy_finder(folder, file)
    other = tmp_path / "other"
    other.write_bytes(b"another build" * 100)
    subprocess.run(["install", "-m", "755", str(other), str(file)], check=True)
    spec = finder.find_spec(RUST_MODULE)
    assert spec.origin == str(folder / RUST)
    assert RUST in present(folder)


def test_a_failed_extraction_after_the_start_raises_an_import_error(
    binary: Path, tmp_path: Path
) -> None:
    """The unpack folder removed under a running program: the import that needs a lazy member
    fails with an ImportError of one line (the process lives on), not a traceback of
    FileNotFoundError nor an exit from inside an import."""
    folder = unpack(binary, tmp_path / "unpack", everything=False)
    finder = lazy_finder(folder, binary)
    assert finder.find_spec("json") is None  # not lazy; the index is read
    shutil.rmtree(folder)
    with pytest.raises(ImportError) as raised:
        finder.find_spec(RUST_MODULE)
    assert (
        str(raised.value) == f"{folder} was removed while this program ran from it: start it again"
    )


def test_the_files_cp_on_the_redis_store(
    binary: Path, redis_server: RedisServer, tmp_path: Path
) -> None:
    """The Redis store's client, coredis, comes from the lazy members twice over: its Python
    from the zip of lazy packages, its mypyc-compiled modules from compiled members imported
    by that Python. The file's ``token create`` and ``cp`` on a Redis store both work."""
    unpack_dir = tmp_path / "unpack"
    env = clean_environment() | {"TRANSPORTER_UNPACK_DIR": str(unpack_dir)}
    store = ["--data-dir", str(tmp_path / "cp"), "--store", redis_server.url]
    argv = [str(binary), "cp", "--listen", "127.0.0.1:0", "--agent-listen", "127.0.0.1:0"]
    with started([*argv, *store], API_LISTENING, env=env) as (cp, (api,)):
        token = create_token(*store, command=[str(binary)])
        request = urllib.request.Request(
            f"{api}/agents", headers={"Authorization": f"Bearer {token}"}
        )
        context = ssl.create_default_context(cafile=str(tmp_path / "cp" / "ca.crt"))
        with urllib.request.urlopen(request, timeout=10, context=context) as answer:
            assert answer.status == 200
        assert cp.stop(signal.SIGTERM) == 0, cp.tail()
    (folder,) = unpack_dir.iterdir()
    extracted = present(folder)
    assert "_internal/transporter-lazy-modules.zip" in extracted
    assert "_internal/coredis/parser.cpython-313-x86_64-linux-gnu.so" in extracted
    assert [name for name in extracted if name.endswith(f"__mypyc{EXTENSION}")] != []


def test_unpack_all_makes_a_folder_that_can_be_read_only(binary: Path, tmp_path: Path) -> None:
    """``TRANSPORTER_UNPACK_ALL=1``: the start extracts every lazy member (for a folder an
    image will hold read-only); mounted read-only, it then serves every command."""
    unpack_dir = tmp_path / "unpack"
    done = run(
        [str(binary), "--version"],
        TRANSPORTER_UNPACK_DIR=str(unpack_dir),
        TRANSPORTER_UNPACK_ALL="1",
    )
    assert done.returncode == 0, done.stderr
    (folder,) = unpack_dir.iterdir()
    assert present(folder) == lazy_members(folder)
    made = run_read_only(
        unpack_dir, bundle_create(binary, unpack_dir, tmp_path / "cp", tmp_path / "b")
    )
    assert made.returncode == 0, made.stderr
