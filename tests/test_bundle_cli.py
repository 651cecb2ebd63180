"""``transporter bundle create`` and ``bundle revoke`` as users run them, against a real
``transporter cp`` process that made its CA at its first start; an agent (in this process, on
real TLS) connects with the bundle, and is cut off by the revocation."""

from __future__ import annotations

import re
import stat
import subprocess
from pathlib import Path

import trio

from tests.bed.harness import InstantRunner
from tests.bed.logwatch import LogWatch
from tests.bed.redis import RedisServer
from tests.bed.roles import PYTHON_TRANSPORTER, running_cp, transporter
from transporter.agent.bundle import load_bundle
from transporter.agent.session import Backoff, Session, agent_info

_AGENT_CHANNEL = re.compile(r"agent channel listening on (wss://\S+)")


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return transporter(*argv)


def test_a_bundle_needs_the_control_planes_ca(tmp_path: Path) -> None:
    done = run(
        "bundle",
        "create",
        "--agent-id",
        "a",
        "--out",
        str(tmp_path / "b"),
        "--data-dir",
        str(tmp_path / "cp"),
    )
    assert done.returncode == 1
    assert "no CA in" in done.stderr and "start the control plane" in done.stderr
    assert not (tmp_path / "b").exists()


def test_an_agent_refuses_to_start_as_another_id_than_its_bundles(tmp_path: Path) -> None:
    data = tmp_path / "cp"
    with running_cp(data):
        assert (
            run(
                "bundle",
                "create",
                "--agent-id",
                "site-1",
                "--out",
                str(tmp_path / "b"),
                "--data-dir",
                str(data),
            ).returncode
            == 0
        )
    done = run(
        "agent",
        "--bundle",
        str(tmp_path / "b"),
        "--agent-id",
        "site-2",
        "--cp-url",
        "wss://cp.invalid/ws",
        "--kubeconfig",
        str(tmp_path / "none"),
    )
    assert done.returncode == 2
    assert "is not the agent of bundle" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_control_plane_with_a_ca_it_cannot_use_stops_at_start(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_text("not a certificate")
    (tmp_path / "ca.key").write_text("not a key")
    done = run(
        "cp",
        "--data-dir",
        str(tmp_path / "cp"),
        "--ca-cert",
        str(tmp_path / "ca.crt"),
        "--ca-key",
        str(tmp_path / "ca.key"),
        "--listen",
        "127.0.0.1:0",
        "--agent-listen",
        "127.0.0.1:0",
    )
    assert done.returncode == 2
    assert (
        done.stderr.startswith("transporter cp: error:") and "not a PEM certificate" in done.stderr
    )


async def test_create_connect_revoke(tmp_path: Path, logs: LogWatch) -> None:
    data, out = tmp_path / "cp", tmp_path / "bundle"
    with running_cp(data) as cp:
        assert "CA created in" in cp.output
        assert (data / "ca.crt").exists()
        assert stat.S_IMODE((data / "ca.key").stat().st_mode) == 0o600
        found = _AGENT_CHANNEL.search(cp.output)
        assert found is not None, cp.output
        url = found.group(1)

        done = run(
            "bundle", "create", "--agent-id", "site-1", "--out", str(out), "--data-dir", str(data)
        )
        assert done.returncode == 0, done.stderr
        serial = re.search(r"serial\s+([0-9a-f]+)", done.stdout)
        assert serial is not None, done.stdout
        bundle = load_bundle(out)
        assert (bundle.agent_id, bundle.serial) == ("site-1", serial.group(1))
        assert f"bundle revoke {bundle.serial}" in done.stdout
        again = run(
            "bundle", "create", "--agent-id", "site-1", "--out", str(out), "--data-dir", str(data)
        )
        assert again.returncode == 1 and "not an empty folder" in again.stderr

        session = Session(
            agent_info("site-1", "test", {}),
            url,
            InstantRunner(),
            backoff=Backoff(first=0.05, cap=0.5),
            ssl_context=bundle.ssl_context(),
            signing_key=bundle.signing_key,
        )
        async with trio.open_nursery() as nursery:
            nursery.start_soon(session.run)
            with trio.fail_after(30):
                await session.connected.wait()

            revoked = await trio.to_thread.run_sync(
                run,
                "bundle",
                "revoke",
                bundle.fingerprint,
                "--reason",
                "laptop lost",
                "--data-dir",
                str(data),
            )
            assert revoked.returncode == 0, revoked.stderr
            assert f"revoked fingerprint {bundle.fingerprint}" in revoked.stdout
            # The control plane (another process) notices, tells the agent and closes.
            await logs.wait_for("control plane refused a message: revoked")
            await logs.wait_for("still unreachable", "refused with HTTP 403")
            nursery.cancel_scope.cancel()

        twice = run("bundle", "revoke", bundle.fingerprint, "--data-dir", str(data))
        assert twice.returncode == 0 and "was revoked already" in twice.stdout
        bad = run("bundle", "revoke", "not-a-serial", "--data-dir", str(data))
        assert bad.returncode == 2 and "neither a certificate's serial" in bad.stderr
    verified = run("audit", "verify", "--data-dir", str(data))
    assert verified.returncode == 0, verified.stdout
    assert "refused: certificate fingerprint" in cp.output and "is revoked" in cp.output


def test_a_plain_channel_is_said_loudly(tmp_path: Path) -> None:
    with running_cp(tmp_path / "cp", "--insecure-plain-ws", "--insecure-plain-http") as cp:
        assert "agent channel listening on ws://" in cp.output
        assert "AGENT CHANNEL SECURITY IS OFF" in cp.output
        assert "API TLS IS OFF (--insecure-plain-http)" in cp.output
        assert cp.api_url.startswith("http://")
    assert not (tmp_path / "cp" / "ca.crt").exists()  # nothing needed a CA


def test_revoke_takes_only_a_certificate_that_was_issued(tmp_path: Path) -> None:
    data = tmp_path / "cp"
    with running_cp(data):
        pass  # its first start made the CA
    serials = {}
    for agent in ("site-1", "site-2"):
        out = tmp_path / agent
        made = run(
            "bundle", "create", "--agent-id", agent, "--out", str(out), "--data-dir", str(data)
        )
        assert made.returncode == 0, made.stderr
        serials[agent] = load_bundle(out)
    where = ["--data-dir", str(data)]
    never = run("bundle", "revoke", "deadbeef", *where)
    assert never.returncode == 1 and "no certificate issued here" in never.stderr
    assert len(never.stderr.strip().splitlines()) == 1
    too_short = run("bundle", "revoke", serials["site-1"].serial[:5], *where)
    assert too_short.returncode == 1 and "needs 8 digits" in too_short.stderr
    prefix = serials["site-1"].serial[:12]
    by_prefix = run("bundle", "revoke", prefix, *where)
    assert by_prefix.returncode == 0, by_prefix.stderr
    assert f"{prefix} is the start of serial {serials['site-1'].serial}" in by_prefix.stdout
    assert f"revoked serial {serials['site-1'].serial}" in by_prefix.stdout
    whole = run("bundle", "revoke", serials["site-2"].fingerprint, *where)
    assert whole.returncode == 0 and "revoked fingerprint" in whole.stdout
    old = run("bundle", "revoke", "0123456789abcdef", "--unrecorded", *where)
    assert old.returncode == 0 and "revoked serial 123456789abcdef" in old.stdout
    verified = run("audit", "verify", *where)
    assert verified.returncode == 0, verified.stdout


def test_a_replica_with_other_keys_on_the_same_store_stops_at_start(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """Each --data-dir makes a CA and signing key of its own on its first start: a second
    control plane on the first one's Redis would fail every agent, so it refuses to start."""
    with running_cp(tmp_path / "first", "--store", redis_server.url):
        pass  # it pinned its keys' fingerprints in the store
    with running_cp(tmp_path / "first", "--store", redis_server.url):
        pass  # the same keys again: fine
    flags = ["--listen", "127.0.0.1:0", "--agent-listen", "127.0.0.1:0"]
    done = run("cp", "--data-dir", str(tmp_path / "second"), "--store", redis_server.url, *flags)
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("transporter cp: error: this control plane's signing key"), last
    assert "must share their keys" in last


def test_a_bundle_as_a_tar_on_stdout(tmp_path: Path) -> None:
    """``--out -``, for a control plane in a pod with no shell (``kubectl exec ... > b.tar``):
    stdout holds only the tar, the key in it 0600; what to do next goes to stderr. A terminal
    as stdout is refused."""
    import os
    import pty
    import tarfile

    data, folder = tmp_path / "cp", tmp_path / "site-1"
    with running_cp(data):
        pass
    flags = ["--agent-id", "site-1", "--out", "-", "--data-dir", str(data)]
    done = subprocess.run(
        [*PYTHON_TRANSPORTER, "bundle", "create", *flags], capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert b"written to stdout, as a tar" in done.stderr and b"tar -xf" in done.stderr
    (tmp_path / "b.tar").write_bytes(done.stdout)
    with tarfile.open(tmp_path / "b.tar") as tar:
        modes = {member.name: stat.S_IMODE(member.mode) for member in tar.getmembers()}
        tar.extractall(folder, filter="data")
    assert modes == {
        "ca.crt": 0o644,
        "agent.crt": 0o644,
        "agent.key": 0o600,
        "event-signing.pub": 0o644,
    }
    assert load_bundle(folder).agent_id == "site-1"

    leader, follower = pty.openpty()
    try:
        refused = subprocess.run(
            [*PYTHON_TRANSPORTER, "bundle", "create", *flags],
            stdout=follower,
            stderr=subprocess.PIPE,
            timeout=60,
        )
    finally:
        os.close(follower)
        os.close(leader)
    assert refused.returncode == 1
    assert b"redirect it to a file or a pipe" in refused.stderr
