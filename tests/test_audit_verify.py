"""``transporter audit verify``: its output and exit codes, on a real SQLite file and Redis."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import coredis
import pytest
import trio

from tests.bed.process import free_port
from tests.bed.redis import RedisServer
from tests.bed.roles import PYTHON_TRANSPORTER
from transporter import cli
from transporter.config.admin import AuditVerifyConfig
from transporter.config.store_spec import StoreSpec
from transporter.protocol.model import AuditEntry
from transporter.store import open_store

Done = subprocess.CompletedProcess[bytes]


async def run(*argv: str, env: dict[str, str] | None = None) -> Done:
    done: Done = await trio.run_process(
        [*PYTHON_TRANSPORTER, "audit", "verify", *argv],
        capture_stdout=True,
        capture_stderr=True,
        env=env,
        check=False,
    )
    return done


def out(done: Done) -> str:
    return done.stdout.decode()


def err(done: Done) -> str:
    return done.stderr.decode()


async def fill(spec: StoreSpec, count: int = 5) -> list[AuditEntry]:
    async with open_store(spec) as store:
        return [
            await store.audit(AuditEntry(at=1000.5 + n, action="agent.connected", agent_id="a"))
            for n in range(count)
        ]


async def test_an_intact_sqlite_log_exits_0_and_prints_its_head(tmp_path: Path) -> None:
    stored = await fill(StoreSpec.sqlite_in(tmp_path))
    done = await run("--data-dir", str(tmp_path))
    assert done.returncode == 0, err(done)
    assert out(done) == f"audit log intact: 5 records; the last is seq 5, hash {stored[-1].hash}\n"
    assert err(done) == ""
    same = await run("--store", f"sqlite://{tmp_path}/transporter.db")
    assert (same.returncode, out(same)) == (0, out(done))


async def test_an_edited_sqlite_record_exits_1_naming_it(tmp_path: Path) -> None:
    stored = await fill(StoreSpec.sqlite_in(tmp_path))
    conn = sqlite3.connect(tmp_path / "transporter.db")
    conn.execute("UPDATE audit SET record = json_set(record, '$.agent_id', 'b') WHERE seq = 3")
    conn.commit()
    conn.close()
    done = await run(env={"TRANSPORTER_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 1, err(done)
    first, second = out(done).splitlines()
    assert first.startswith(f"audit log broken at seq 3: hash {stored[2].hash} does not match")
    assert second == f"2 records before it match; the last is seq 2, hash {stored[1].hash}"


async def test_a_redis_log_is_verified_by_address_or_url(redis_server: RedisServer) -> None:
    stored = await fill(StoreSpec.parse(redis_server.url), 3)
    address = f"{redis_server.host}:{redis_server.port}"
    done = await run("--redis-addr", address)
    assert done.returncode == 0, err(done)
    assert out(done) == f"audit log intact: 3 records; the last is seq 3, hash {stored[-1].hash}\n"

    async with coredis.Redis.from_url(redis_server.url, decode_responses=True) as raw:
        key = "transporter:audit"
        entries = await raw.xrange(key)
        await raw.delete([key])
        for item in entries:
            data = json.loads(item.field_values["entry"])
            if data["seq"] == 2:
                data["action"] = "agent.disconnected"
            await raw.xadd(key, {"entry": json.dumps(data)}, identifier=item.identifier)
    done = await run("--store", redis_server.url)
    assert done.returncode == 1, err(done)
    assert out(done).startswith("audit log broken at seq 2: hash ")


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["--store", "redis://h:1/0", "--redis-addr", "h:1"], "not both"),
        (["--store", "mysql://x"], "scheme must be"),
        (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    ],
)
async def test_usage_errors_exit_2_in_one_line(argv: list[str], complaint: str) -> None:
    done = await run(*argv)
    assert done.returncode == 2, err(done)
    assert len(err(done).splitlines()) == 1
    assert complaint in err(done)
    assert out(done) == ""


async def test_no_action_and_no_store_exit_2(tmp_path: Path) -> None:
    bare = await trio.run_process(
        [*PYTHON_TRANSPORTER, "audit"], capture_stdout=True, capture_stderr=True, check=False
    )
    assert bare.returncode == 2
    assert "required: ACTION" in bare.stderr.decode()
    nothing = await run("--data-dir", str(tmp_path / "nowhere"))
    assert nothing.returncode == 2
    assert err(nothing) == (
        f"transporter audit verify: error: no store at {tmp_path}/nowhere/transporter.db"
        " (see --help)\n"
    )
    assert not (tmp_path / "nowhere").exists()  # and none was made


async def test_a_store_that_cannot_be_reached_exits_1() -> None:
    done = await run("--redis-addr", f"127.0.0.1:{free_port()}")
    assert done.returncode == 1
    assert out(done) == ""
    assert err(done).startswith("transporter audit verify: cannot read the store redis://")
    assert "Traceback" not in err(done)


def test_the_store_flags_and_variables_are_those_of_cp(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TRANSPORTER_DATA_DIR", str(tmp_path))
    assert cli.parse(["audit", "verify"]) == AuditVerifyConfig(store=StoreSpec.sqlite_in(tmp_path))
    assert cli.parse(["audit", "verify", "--redis-addr", "r:6379"]) == AuditVerifyConfig(
        store=StoreSpec("redis", "redis://r:6379/0")
    )
    monkeypatch.setenv("TRANSPORTER_STORE", "redis://shared:6379/2")
    assert cli.parse(["audit", "verify"]) == AuditVerifyConfig(
        store=StoreSpec("redis", "redis://shared:6379/2")
    )
    cp = cli.parse(["cp", "--listen", "127.0.0.1:9000"])  # cp's own flags are unchanged
    assert cp.store == StoreSpec("redis", "redis://shared:6379/2")  # type: ignore[union-attr]
