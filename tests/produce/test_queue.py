"""``produce k8s --mode queue`` and ``produce get dead-letters`` as a user runs them, against a
real control plane on a real redis-server: the id printed at once, the entry taken and stored
with the token's name; a refused entry's error is what ``--wait`` answers (exit 2, as a POST's
refusal) and what ``get dead-letters`` lists; flags that do not go together are refused."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import trio

from tests.bed.harness import ControlPlane, run_produce
from tests.bed.manifests import configmap, unique
from tests.bed.queue import settled
from tests.bed.redis import RedisServer
from tests.bed.sentinel import SERVICE, running_sentinels
from transporter.config.store_spec import StoreSpec
from transporter.security.tokens import Role, token_id_of

pytestmark = pytest.mark.redis


@pytest.fixture
async def plane(nursery: trio.Nursery, tmp_path: Path, redis_server: RedisServer) -> ControlPlane:
    cp = ControlPlane(nursery, tmp_path / "cp", store=StoreSpec.parse(redis_server.url))
    await cp.start()
    return cp


def manifest(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(configmap(name))
    return path


async def test_an_event_goes_through_the_queue(
    plane: ControlPlane, redis_server: RedisServer, tmp_path: Path
) -> None:
    token = await plane.new_token("queue-ci", Role.SUBMIT, ("site-*",))
    name = unique("qp")
    done = await run_produce(
        plane, "k8s", "--mode", "queue", "--agent", "site-1",
        "--manifest", str(manifest(tmp_path, name)), "-o", "json",
        token=token, env={"TRANSPORTER_REDIS": redis_server.url},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    event_id = json.loads(done.stdout)["event_id"]
    await settled(redis_server)
    record = await plane.client.event(event_id)
    assert record.event.created_by == "token:queue-ci"
    assert list(record.event.payload.manifests) == [configmap(name)]


async def test_a_refused_entry_is_the_answer_to_wait_and_a_dead_letter(
    plane: ControlPlane, redis_server: RedisServer, tmp_path: Path
) -> None:
    token = await plane.new_token("team-a", Role.SUBMIT, ("team-a-*",))
    done = await run_produce(
        plane, "k8s", "--mode", "queue", "--redis", redis_server.url, "--agent", "team-b-1",
        "--manifest", str(manifest(tmp_path, unique("out"))), "--wait", "--timeout", "30",
        token=token,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    stderr = done.stderr.decode()
    assert "refused" in stderr and "403" in stderr and "team-b-1" in stderr
    listed = await run_produce(plane, "get", "dead-letters", "-o", "json", token=token)
    assert listed.returncode == 0, listed.stderr
    (letter,) = json.loads(listed.stdout)
    assert letter["status"] == 403 and letter["error"] == "forbidden"
    assert letter["token_id"] == token_id_of(token)
    assert letter["at"].endswith("Z")
    table = await run_produce(plane, "get", "dead-letters", "-o", "wide")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.decode().splitlines()
    assert lines[0].split()[:6] == ["ID", "AGE", "STATUS", "ERROR", "EVENT", "TOKEN"]
    assert "forbidden" in lines[1] and letter["id"] in lines[1]


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--mode", "queue"], "--mode queue needs --redis"),
        (["--redis", "redis://127.0.0.1:1/0"], "--redis: only with --mode queue"),
        (["--mode", "queue", "--redis", "sqlite:///x.db"], "Redis URL"),
    ],
)
async def test_flags_that_do_not_go_together(
    plane: ControlPlane, tmp_path: Path, flags: list[str], says: str
) -> None:
    done = await run_produce(
        plane, "k8s", "--agent", "a", "--manifest", str(manifest(tmp_path, "f")), *flags
    )
    assert done.returncode == 2
    assert says in done.stderr.decode()


async def test_an_unreachable_queue_is_one_line_and_exit_1(
    plane: ControlPlane, tmp_path: Path
) -> None:
    """One line for the error, after the one naming the event (printed before appending)."""
    done = await run_produce(
        plane, "k8s", "--mode", "queue", "--redis", "redis://127.0.0.1:1/0", "--agent", "a",
        "--manifest", str(manifest(tmp_path, "f")),
    )  # fmt: skip
    assert done.returncode == 1
    naming, line = done.stderr.decode().splitlines()
    assert naming.startswith("transporter produce: appending ") and naming.endswith(" to the queue")
    assert line.startswith("transporter produce: the queue: ")
    assert "may be queued" not in line  # nothing was appended: no doubt


async def test_a_rollout_goes_through_the_queue(
    plane: ControlPlane, redis_server: RedisServer, tmp_path: Path
) -> None:
    """Its id chosen by the producer, printed at once; followed once a control plane took it;
    one out of the token's reach is refused as a POST of it would be (403, nothing stored)."""
    token = await plane.new_token("queue-ro", Role.SUBMIT, ("site-*",))
    queue = ("--mode", "queue", "--redis", redis_server.url)
    cm = str(manifest(tmp_path, unique("ro")))
    done = await run_produce(
        plane, "k8s", *queue, "--selector", "env=nowhere", "--allow-empty", "--manifest", cm,
        "--id", "queued-ro", "--wait", "--timeout", "30", token=token,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().startswith("rollout queued-ro queued\n")
    assert (await plane.client.rollout("queued-ro"))["state"] == "completed"
    refused = await run_produce(
        plane, "k8s", *queue, "--agents", "site-1,other-1", "--manifest", cm, "--wait",
        "--timeout", "30", token=token,
    )  # fmt: skip
    assert refused.returncode == 2, refused.stderr
    assert "403" in refused.stderr.decode() and "other-1" in refused.stderr.decode()


async def test_an_append_of_unknown_outcome_is_made_again_then_said_to_maybe_be_queued(
    tmp_path: Path,
) -> None:
    """Through Sentinels as a user that may not WAIT: every XADD runs, none is confirmed. The
    id is said before appending; the same entry is appended again (the same event: stored
    once) until ``--timeout``; then the user is told it may be queued, as which id. The token
    is in no output."""
    token = "tpt_0123456789ab_" + "s" * 43
    with running_sentinels(tmp_path / "sentinels") as bed:
        for node in bed.servers:  # ACL users are not replicated
            rules = ("resetkeys", "~transporter:queue", "-@all", "+xadd", "+xlen", "+role")
            assert node.command("ACL", "SETUSER", "nowait", "on", ">pw", *rules) == "OK"
        hosts = ",".join(f"127.0.0.1:{node.port}" for node in bed.sentinels)
        url = f"redis+sentinel://nowait:pw@{hosts}/{SERVICE}"
        argv = [sys.executable, "-m", "transporter", "produce", "k8s", "--mode", "queue"]
        argv += ["--redis", url, "--agent", "a", "--manifest", str(manifest(tmp_path, "u"))]
        argv += ["--cp-url", "https://127.0.0.1:1", "--timeout", "1"]
        environment = {k: v for k, v in os.environ.items() if not k.startswith("TRANSPORTER_")}
        done = await trio.run_process(
            argv, capture_stdout=True, capture_stderr=True, check=False,
            env={**environment, "TRANSPORTER_TOKEN": token},
        )  # fmt: skip
        bodies = bed.primary().command("XRANGE", "transporter:queue", "-", "+")
    assert done.returncode == 1, done.stderr
    naming, *_, said = done.stderr.decode().splitlines()
    event_id = naming.removeprefix("transporter produce: appending ").removesuffix(" to the queue")
    assert f"may be queued as {event_id}" in said and "permissions" in said
    assert token not in done.stderr.decode() + done.stdout.decode()
    assert isinstance(bodies, list) and len(bodies) >= 2  # made again
    ids = {json.loads(dict(zip(f[::2], f[1::2], strict=True))["body"])["id"] for _, f in bodies}
    assert ids == {event_id}
