"""``transporter produce``'s rollout commands run as users run them, against a real control
plane (on SQLite), with agents that never connect (their events wait) or real ones."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
from collections.abc import Callable
from pathlib import Path

import trio
import trio.lowlevel

from tests.bed.harness import Agent, ControlPlane, run_produce
from tests.bed.kube import Cluster
from tests.bed.manifests import configmap_yaml, unique
from transporter.security.tokens import Role


def manifest(folder: Path, **data: str) -> str:
    path = folder / f"{unique('m')}.yaml"
    path.write_text(configmap_yaml(unique("cm"), None, **(data or {"a": "1"})))
    return str(path)


async def test_a_rollout_to_agents_that_never_come_expires_and_exits_1(
    cp: ControlPlane, tmp_path: Path
) -> None:
    done = await run_produce(
        cp,
        "k8s",
        "--agents",
        "gone-1,gone-2",
        "--manifest",
        manifest(tmp_path),
        "--ttl",
        "1",
        "--id",
        "expiring",
        "--wait",
        "--timeout",
        "60",
    )
    out = done.stdout.decode()
    assert done.returncode == 1 and out, (out, done.stderr)
    assert "rollout expiring accepted: 2 agent(s) (gone-1, gone-2)" in out
    assert "gone-1  wave 1  expired" in out  # plain lines: stdout is not a terminal
    assert "rollout expiring failed: 2 expired (2 clusters)" in out.splitlines()[-1]

    listed = await run_produce(cp, "get", "rollouts", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    (item,) = json.loads(listed.stdout)
    assert (item["id"], item["state"], item["counts"]) == ("expiring", "failed", {"expired": 2})
    assert item["created_at"].endswith("Z")  # RFC 3339, as every time in -o json
    one = await run_produce(cp, "get", "rollout", "expiring", "-o", "json")
    shown = json.loads(one.stdout)
    assert [c["agent_id"] for c in shown["clusters"]] == ["gone-1", "gone-2"]
    assert {c["state"] for c in shown["clusters"]} == {"expired"}
    assert shown["timeline"][0]["what"] == "accepted"
    table = await run_produce(cp, "get", "rollout", "expiring")
    lines = table.stdout.decode().splitlines()
    assert lines[:2] == ["apply      expiring", "state      failed"]
    assert any(line.split()[:4] == ["gone-1", "1", "expired", "-"] for line in lines)
    names = await run_produce(cp, "get", "rollouts", "-o", "name")
    assert names.stdout == b"rollout/expiring\n"
    # A listing of rollouts holds plans too: each is named by its own kind.
    payload = {"manifests": [configmap_yaml("planned", None, a="1")]}
    await cp.client.submit_plan({"id": "planned", "target_agents": ["gone-1"], "payload": payload})
    names = await run_produce(cp, "get", "rollouts", "-o", "name")
    assert names.stdout == b"plan/planned\nrollout/expiring\n"
    one = await run_produce(cp, "get", "rollout", "planned", "-o", "name")
    assert one.stdout == b"plan/planned\n"


async def test_cancel_a_queued_event_and_a_rollout(cp: ControlPlane, tmp_path: Path) -> None:
    single = await run_produce(
        cp, "k8s", "--agent", "away-1", "--manifest", manifest(tmp_path), "-o", "json"
    )
    event_id = json.loads(single.stdout)["event_id"]
    cancelled = await run_produce(cp, "cancel", f"event/{event_id}")
    assert cancelled.returncode == 0, cancelled.stderr
    assert (
        cancelled.stdout.decode() == f"event {event_id} cancelled: it was never sent to its agent\n"
    )
    again = await run_produce(cp, "cancel", event_id)  # bare: no rollout has it, the event does
    assert again.returncode == 2 and b"409 not_cancellable" in again.stderr, again.stderr
    shown = await run_produce(cp, "get", "event", event_id, "-o", "json")
    assert json.loads(shown.stdout)["state"] == "cancelled"

    started = await run_produce(
        cp, "k8s", "-l", "nobody=here", "--allow-empty", "--standing", "--id", "std",
        "--manifest", manifest(tmp_path), "-o", "json",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout)["rollout_id"] == "std"
    stopped = await run_produce(cp, "cancel", "std", "-o", "json")
    assert stopped.returncode == 0, stopped.stderr
    assert json.loads(stopped.stdout)["state"] == "cancelled"
    two = ("--agents", "away-2,away-3", "--id", "r2", "--manifest", manifest(tmp_path))
    assert (await run_produce(cp, "k8s", *two)).returncode == 0
    child = await run_produce(cp, "cancel", "r2_away-2")  # a child event: an event's id
    assert child.stdout == b"event r2_away-2 cancelled: it was never sent to its agent\n"
    event = json.loads((await run_produce(cp, "get", "event", "r2_away-2", "-o", "json")).stdout)
    assert (event["state"], event["event"]["rollout_id"]) == ("cancelled", "r2")
    missing = await run_produce(cp, "cancel", "no-such-thing")
    assert missing.returncode == 1
    assert b"no rollout and no event has the id 'no-such-thing'" in missing.stderr


async def test_the_control_plane_refusals_are_exit_2(cp: ControlPlane, tmp_path: Path) -> None:
    none = await run_produce(cp, "k8s", "-l", "nobody=here", "--manifest", manifest(tmp_path))
    assert none.returncode == 2
    assert b"no_match" in none.stderr, none.stderr
    approve = await run_produce(cp, "approve", "nothing-here")
    assert approve.returncode == 1 and b"404" in approve.stderr
    team_a = await cp.new_token("team-a", Role.SUBMIT, ("team-a-*",))
    elsewhere = await run_produce(
        cp, "k8s", "--agents", "team-a-1,team-b-1", "--manifest", manifest(tmp_path), token=team_a
    )
    assert elsewhere.returncode == 2 and b"403" in elsewhere.stderr
    assert b"team-b-1" in elsewhere.stderr and b"team-a-1" not in elsewhere.stderr
    listed = await run_produce(cp, "get", "rollouts", "-o", "yaml")
    assert listed.stdout == b"[]\n"  # nothing stored


async def test_plan_then_apply_on_a_real_cluster(
    cp: ControlPlane, make_agent: Callable[..., Agent], cluster: Cluster, tmp_path: Path
) -> None:
    agent = make_agent(cluster, labels={"ring": "canary"})
    await agent.start(cp.agent_url)
    files = manifest(tmp_path, a="1")
    planned = await run_produce(
        cp, "plan", "-l", "ring=canary", "--manifest", files, "--id", "p1", "--timeout", "120"
    )
    out = planned.stdout.decode()
    assert planned.returncode == 0, (out, planned.stderr)
    assert "would_create" in out and "plan p1: 1 would_create on 1 cluster(s)" in out
    assert "apply it: transporter produce apply p1 --wait" in out
    shown = json.loads((await run_produce(cp, "get", "plan", "p1", "-o", "json")).stdout)
    (result,) = shown["clusters"][0]["resources"]
    assert (result["status"], result["fingerprint"]) == ("would_create", "absent")

    applied = await run_produce(cp, "apply", "p1", "--id", "a1", "--wait", "--timeout", "120")
    assert applied.returncode == 0, (applied.stdout, applied.stderr)
    assert b"rollout a1 completed: 1 completed (1 cluster)" in applied.stdout


async def test_a_plan_a_cluster_could_not_make_says_which_and_no_apply(
    cp: ControlPlane, make_agent: Callable[..., Agent], cluster: Cluster, tmp_path: Path
) -> None:
    """One cluster plans (nothing to change there after the apply), one agent never comes (its
    dry run expires): not 'nothing to change', no apply hint, the cluster named; exit 1."""
    agent = make_agent(cluster, labels={"ring": "canary"})
    await agent.start(cp.agent_url)
    files = manifest(tmp_path, a="1")
    applied = await run_produce(cp, "k8s", "--agent", agent.agent_id, "--manifest", files, "--wait")
    assert applied.returncode == 0, applied.stderr
    targets = f"{agent.agent_id},never-comes"
    planned = await run_produce(
        cp, "plan", "--agents", targets, "--manifest", files, "--id", "half", "--ttl", "2",
        "--timeout", "60",
    )  # fmt: skip
    out = planned.stdout.decode()
    assert planned.returncode == 1, (out, planned.stderr)
    assert "nothing to change" not in out and "apply it" not in out
    assert "plan half: no change found on the 1 cluster(s) that planned; 1 did not plan:" in out
    assert "never-comes (expired" in out
    assert "fix what failed and plan again: transporter produce get plan half" in out


async def test_waves_wait_for_approval_and_following_says_how_to_go_on(
    cp: ControlPlane, make_agent: Callable[..., Agent], cluster: Cluster, tmp_path: Path
) -> None:
    canary = make_agent(cluster, labels={"ring": "canary"})
    late = make_agent(cluster, labels={"ring": "late"})
    for agent in (canary, late):
        await agent.start(cp.agent_url)
    files = manifest(tmp_path)
    waves = ("--wave", "ring=canary", "--wave", ";approval")
    first = await run_produce(
        cp, "k8s", "-l", "ring", "--manifest", files, "--id", "w1", *waves, "--wait",
        "--timeout", "5", "--wait-ready",
    )  # fmt: skip
    out = first.stdout.decode()
    assert first.returncode == 1, (out, first.stderr)
    assert "accepted: 2 agent(s) in 2 waves" in out
    assert f"{canary.agent_id}  wave 1  completed" in out
    assert "rollout w1 awaiting_approval: 1 completed, 1 pending (2 clusters)" in out
    assert "approve the next wave: transporter produce approve w1" in out
    assert "not finished after 5 s; follow it: transporter produce get rollout w1 --watch" in out

    approved = await run_produce(cp, "approve", "w1")
    assert approved.stdout == b"rollout w1: wave 2 approved\n", approved.stderr
    followed = await run_produce(cp, "get", "rollout", "w1", "--watch", "-o", "json")
    assert followed.returncode == 0, followed.stderr
    shown = json.loads(followed.stdout)
    assert shown["state"] == "completed" and shown["counts"] == {"completed": 2}
    assert [c["wave"] for c in shown["clusters"] if c["agent_id"] == late.agent_id] == [1]
    again = await run_produce(cp, "approve", "w1")
    assert again.returncode == 2 and b"409" in again.stderr  # nothing awaits approval


async def test_ctrl_c_stops_following_and_the_rollout_goes_on(
    cp: ControlPlane, tmp_path: Path
) -> None:
    assert cp.bound is not None and cp.token is not None
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TRANSPORTER_")}
    argv = [
        sys.executable, "-m", "transporter", "produce", "k8s", "--agents", "far-1",
        "--manifest", manifest(tmp_path), "--id", "followed", "--wait",
        "--cp-url", cp.bound.api_url, "--ca-cert", str(cp.ca_file),
    ]  # fmt: skip
    process = await trio.lowlevel.open_process(
        argv,
        stdout=subprocess.PIPE,
        env=environment | {"TRANSPORTER_TOKEN": cp.token, "TRANSPORTER_LOG_FORMAT": "text"},
    )
    assert process.stdout is not None
    seen = b""
    with trio.fail_after(30):
        while b"far-1  wave 1  queued" not in seen:  # following
            chunk = await process.stdout.receive_some()
            assert chunk, seen
            seen += chunk
        process.send_signal(signal.SIGINT)
        while chunk := await process.stdout.receive_some():
            seen += chunk
        assert await process.wait() == 1
    out = seen.decode()
    assert "rollout followed running: 1 queued (1 cluster)" in out
    assert "stopped following (the rollout goes on); follow it:" in out
    assert "transporter produce get rollout followed --watch" in out
    shown = await run_produce(cp, "get", "rollout", "followed", "-o", "json")
    assert json.loads(shown.stdout)["state"] == "running"  # not cancelled by the Ctrl-C


async def test_plan_as_json_and_wait_ready_for_one_agent(
    cp: ControlPlane, make_agent: Callable[..., Agent], cluster: Cluster, tmp_path: Path
) -> None:
    agent = make_agent(cluster, labels={})
    await agent.start(cp.agent_url)
    files = manifest(tmp_path)
    planned = await run_produce(
        cp, "plan", "--agent", agent.agent_id, "--manifest", files, "-o", "json"
    )
    assert planned.returncode == 0, planned.stderr
    plan = json.loads(planned.stdout)
    assert plan["kind"] == "plan" and plan["expires_at"].endswith("Z")
    assert [r["status"] for r in plan["clusters"][0]["resources"]] == ["would_create"]
    ready = await run_produce(
        cp, "k8s", "--agent", agent.agent_id, "--manifest", files, "--wait-ready",
        "--ready-timeout", "60", "--wait", "-o", "json",
    )  # fmt: skip
    assert ready.returncode == 0, ready.stderr
    shown = json.loads(ready.stdout)
    assert shown["event"]["payload"]["wait_ready"] is True
    assert [(r["status"], r["ready"]) for r in shown["resources"]] == [("created", "current")]


async def test_on_a_terminal_the_clusters_are_a_live_table(
    cp: ControlPlane, tmp_path: Path
) -> None:
    """Under a pseudo-terminal, as a person runs it: rich's live table, redrawn in place."""
    assert cp.bound is not None and cp.token is not None
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TRANSPORTER_")}
    argv = [
        sys.executable, "-m", "transporter", "produce", "k8s", "--agents", "tty-1,tty-2",
        "--manifest", manifest(tmp_path), "--id", "on-tty", "--ttl", "1", "--wait",
        "--cp-url", cp.bound.api_url, "--ca-cert", str(cp.ca_file),
    ]  # fmt: skip
    env = environment | {"TRANSPORTER_TOKEN": cp.token, "TERM": "xterm-256color"}
    with trio.fail_after(60):
        process = await trio.lowlevel.open_process(
            argv, stdin=follower, stdout=follower, stderr=follower, env=env
        )
        os.close(follower)

        def read_all() -> bytes:
            seen = b""
            while True:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # EIO: the terminal's last writer closed it
                    return seen
                if not chunk:
                    return seen
                seen += chunk

        try:
            seen = await trio.to_thread.run_sync(read_all)
        finally:
            os.close(leader)
        assert await process.wait() == 1
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode(errors="replace"))
    assert "rollout on-tty accepted: 2 agent(s)" in screen
    assert "AGENT" in screen and "MESSAGE" in screen  # the live table's header
    assert re.search(r"tty-1\s+1\s+expired", screen), screen
    # max_failures 0: tty-2's child expires too, or is cancelled first when tty-1's expiry is
    # seen while it still waits (either ends the rollout failed).
    ended = r"rollout on-tty failed: (2 expired|1 expired, 1 cancelled) \(2 clusters\)"
    assert re.search(ended, screen), screen
