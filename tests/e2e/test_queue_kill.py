"""Queue mode: a control plane killed with kill -9 while it holds entries it read but could not
store (a real redis-server refusing its writes: every script denied to its user, so its
submissions fail as in a store outage) leaves them pending in the group, not lost and not
dead-lettered; another replica started on the same Redis claims them after --queue-claim-after
and stores each event once.

(CLIENT PAUSE WRITE cannot hold a replica between reading and storing: Redis counts XREADGROUP
as a write, so the read would be paused too.)"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

from tests.bed.manifests import configmap, event_body, unique
from tests.bed.queue import DEAD, QUEUE, redis_cli, unsettled
from tests.bed.redis import RedisServer
from tests.bed.roles import PYTHON_TRANSPORTER, clean_environment, running_cp


def append(server: RedisServer, name: str, token: str) -> str:
    """An entry for event ``name``, as a producer (or its Redis user) appends it."""
    body = json.dumps(event_body("site-1", configmap(name), id=name))
    return redis_cli(server, "XADD", QUEUE, "*", "v", "1", "body", body, "token", token)


def settled_within(server: RedisServer, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while (left := unsettled(server)) != (0, 0):
        assert time.monotonic() < deadline, f"unsettled (in the queue, pending): {left}"
        time.sleep(0.05)


def test_a_replica_killed_holding_entries_leaves_them_to_another(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    data = tmp_path / "cp"
    flags = ("--store", redis_server.url, "--queue-claim-after", "1")
    names = [unique("held") for _ in range(2)]
    with running_cp(data, *flags) as first:
        token = first.new_token("queue-kill", "submit", "site-*")
        admin = first.new_token("admin")
        redis_cli(redis_server, "ACL", "SETUSER", "default", "-@scripting")
        ids = [append(redis_server, name, token) for name in names]
        for entry_id in ids:  # read by the first replica, whose store write failed
            first.process.wait_for(re.compile(rf"queue: entry {entry_id} not stored"))
        held = redis_cli(redis_server, "XPENDING", QUEUE, "cp").splitlines()
        assert held[0] == "2" and len(held) == 5, held  # count, first, last, one consumer, 2
        first.process.kill()  # kill -9, holding both
    redis_cli(redis_server, "ACL", "SETUSER", "default", "+@all")
    assert unsettled(redis_server) == (2, 2)
    with running_cp(data, *flags) as second:
        settled_within(redis_server, 30)
        assert "claimed" in second.output
        for name in names:
            shown = subprocess.run(
                [*PYTHON_TRANSPORTER, "produce", "get", "event", name, "-o", "json"],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
                env={
                    **clean_environment(),
                    "TRANSPORTER_TOKEN": admin,
                    "TRANSPORTER_CP_URL": second.api_url,
                    "TRANSPORTER_CA_CERT": str(data / "ca.crt"),
                },
            )
            assert shown.returncode == 0, shown.stderr
            assert json.loads(shown.stdout)["event"]["created_by"] == "token:queue-kill"
    assert redis_cli(redis_server, "XLEN", DEAD) == "0"  # retried, never dead-lettered
