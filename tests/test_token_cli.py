"""``transporter token create|list|revoke`` as users run them, the producer's ``--token``, and
``cp --insecure-no-auth``: output, exit codes, usage errors, and a running control plane that
takes a token made beside it and refuses it once revoked."""

from __future__ import annotations

import json
import re
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.bed.redis import RedisServer
from tests.bed.roles import PYTHON_TRANSPORTER, running_cp, transporter
from transporter import cli
from transporter.config.admin import TokenCreateConfig, TokenListConfig, TokenRevokeConfig
from transporter.config.cp import CpConfig
from transporter.config.produce import ProduceConfig, QueryConfig
from transporter.config.store_spec import StoreSpec

TOKEN = re.compile(r"^tpt_([0-9a-f]{12})_[A-Za-z0-9_-]{43}$")


def run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return transporter(*argv, env=env)


def create(*argv: str) -> tuple[str, str, subprocess.CompletedProcess[str]]:
    """``token create``: the token, its id, and the process."""
    done = run("token", "create", *argv)
    assert done.returncode == 0, done.stderr
    text = done.stdout.strip()
    found = TOKEN.fullmatch(text)
    assert found, done.stdout
    assert done.stdout == text + "\n"  # the token and nothing else on stdout
    return text, found.group(1), done


def get(url: str, token: str | None, context: ssl.SSLContext) -> int:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code


def test_create_list_revoke(tmp_path: Path) -> None:
    where = ["--data-dir", str(tmp_path)]
    text, token_id, done = create(
        "--name",
        "ci-deploy",
        "--role",
        "submit",
        "--agents",
        "team-a-*",
        "--agents",
        "staging",
        *where,
    )
    assert done.stderr.startswith(
        f"created token {token_id} 'ci-deploy', role submit, agents team-a-* staging.\n"
    )
    assert "only time the token is shown" in done.stderr
    assert f"transporter token revoke {token_id}" in done.stderr
    assert text not in done.stderr
    _, admin_id, _ = create("--name", "ops", "--role", "admin", *where)

    listed = run("token", "list", *where)
    assert listed.returncode == 0, listed.stderr
    header, first, second = listed.stdout.splitlines()
    assert header.split() == [
        "ID",
        "NAME",
        "ROLE",
        "AGENTS",
        "CREATED",
        "(UTC)",
        "REVOKED",
        "(UTC)",
        "CREATED",
        "BY",
    ]
    assert first.split()[:4] == [token_id, "ci-deploy", "submit", "team-a-*,staging"]
    assert first.split()[6] == "-"  # not revoked
    assert first.split()[7].startswith("cli:")
    assert second.split()[:4] == [admin_id, "ops", "admin", "(all)"]
    as_json = json.loads(run("token", "list", "-o", "json", *where).stdout)
    assert [t["id"] for t in as_json] == [token_id, admin_id]
    assert as_json[0]["agents"] == ["team-a-*", "staging"] and as_json[0]["revoked_at"] is None
    assert "hash" not in as_json[0]
    secret = text.split("_", 2)[2]
    assert secret not in listed.stdout + json.dumps(as_json)

    revoked = run("token", "revoke", token_id, *where)
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout == ""
    assert revoked.stderr.startswith(f"revoked token {token_id} 'ci-deploy'")
    again = run("token", "revoke", token_id, *where)
    assert again.returncode == 0
    assert "was revoked already, at " in again.stderr
    after = json.loads(run("token", "list", "-o", "json", *where).stdout)
    assert after[0]["revoked_at"] is not None and after[1]["revoked_at"] is None

    unknown = run("token", "revoke", "0123456789ab", *where)
    assert (unknown.returncode, unknown.stderr) == (
        1,
        "transporter token revoke: no token 0123456789ab (see `transporter token list`)\n",
    )


def test_changes_are_in_the_audit_log_without_the_token(tmp_path: Path) -> None:
    where = ["--data-dir", str(tmp_path)]
    text, token_id, _ = create("--name", "ci", "--role", "read", "--agents", "*", *where)
    assert run("token", "revoke", token_id, *where).returncode == 0
    with running_cp(tmp_path) as cp:
        admin = cp.new_token("auditor", "admin")
        request = urllib.request.Request(
            f"{cp.api_url}/audit", headers={"Authorization": f"Bearer {admin}"}
        )
        with urllib.request.urlopen(request, timeout=30, context=cp.api_context) as answer:
            entries = json.load(answer)["items"]
    actions = [(e["action"], e["detail"].split("'")[1]) for e in reversed(entries)]
    assert actions[:3] == [
        ("token.created", "ci"),
        ("token.revoked", "ci"),
        ("token.created", "auditor"),
    ]
    for entry in entries[-2:]:
        assert entry["actor"].startswith("cli:")
        assert text not in json.dumps(entry) and token_id in entry["detail"]


def test_a_running_control_plane_takes_a_new_token_and_refuses_it_once_revoked(
    tmp_path: Path,
) -> None:
    """The command and the control plane are two processes on one SQLite file."""
    with running_cp(tmp_path) as cp:
        assert "there is none yet: create one on this host" in cp.output
        url = f"{cp.api_url}/events"
        assert get(url, None, cp.api_context) == 401
        token = cp.new_token("ci", "read", "*")
        assert get(url, token, cp.api_context) == 200
        token_id = TOKEN.fullmatch(token).group(1)  # type: ignore[union-attr]
        assert run("token", "revoke", token_id, "--data-dir", str(tmp_path)).returncode == 0
        assert get(url, token, cp.api_context) == 401
        assert get(f"{cp.api_url}/healthz", None, cp.api_context) == 200


def test_tokens_in_redis_by_address_or_url(redis_server: RedisServer) -> None:
    address = f"{redis_server.host}:{redis_server.port}"
    _, token_id, _ = create("--name", "ci", "--role", "admin", "--redis-addr", address)
    listed = run("token", "list", "--store", redis_server.url)
    assert listed.returncode == 0, listed.stderr
    assert token_id in listed.stdout


def test_insecure_no_auth_serves_without_tokens_and_warns(tmp_path: Path) -> None:
    with running_cp(tmp_path, "--insecure-no-auth") as cp:
        assert get(f"{cp.api_url}/events", None, cp.api_context) == 200
    assert "API AUTHENTICATION IS OFF (--insecure-no-auth)" in cp.output


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["create", "--role", "admin"], "--name is required"),
        (["create", "--name", "ci"], "--role is required"),
        (["create", "--name", "ci", "--role", "root"], "invalid choice: 'root'"),
        (["create", "--name", "c i", "--role", "admin"], "token name 'c i' must be"),
        (["create", "--name", "ci", "--role", "submit"], "needs the agents it may target"),
        (["create", "--name", "ci", "--role", "read"], "needs the agents it may target"),
        (
            ["create", "--name", "ci", "--role", "admin", "--agents", "a"],
            "--agents: an admin token reaches every agent",
        ),
        (
            ["create", "--name", "ci", "--role", "submit", "--agents", "Team-A"],
            "--agents: agent pattern 'Team-A' can match no agent id",
        ),
        (["revoke", "tpt_0123456789ab_x"], "ID: 'tpt_0123456789ab_x' is not a token id"),
        (["revoke"], "required: id"),
        (["list", "-o", "xml"], "invalid choice"),
        ([], "required: ACTION"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(
    tmp_path: Path, argv: list[str], complaint: str
) -> None:
    done = run("token", *argv, "--data-dir", str(tmp_path)) if argv else run("token")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert complaint in lines[0]
    assert done.stdout == ""


def test_list_and_revoke_need_a_store_that_exists(tmp_path: Path) -> None:
    for argv in (["list"], ["revoke", "0123456789ab"]):
        done = run("token", *argv, "--data-dir", str(tmp_path / "nowhere"))
        assert done.returncode == 2
        assert "no store at" in done.stderr
    assert not (tmp_path / "nowhere").exists()


def test_flags_and_variables_become_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRANSPORTER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TRANSPORTER_AGENTS", "team-a-*,staging")
    store = StoreSpec.sqlite_in(tmp_path)
    assert cli.parse(["token", "create", "--name", "ci", "--role", "submit"]) == TokenCreateConfig(
        store=store, name="ci", role="submit", agents=("team-a-*", "staging")
    )
    assert cli.parse(["token", "list"]) == TokenListConfig(store=store)
    assert cli.parse(["token", "revoke", "0123456789ab", "--redis-addr", "r:1"]) == (
        TokenRevokeConfig(store=StoreSpec.parse("redis://r:1/0"), token_id="0123456789ab")
    )

    monkeypatch.setenv("TRANSPORTER_INSECURE_NO_AUTH", "true")
    assert cli.parse(["cp"]).insecure_no_auth  # type: ignore[union-attr]
    monkeypatch.delenv("TRANSPORTER_INSECURE_NO_AUTH")
    assert not cli.parse(["cp"]).insecure_no_auth  # type: ignore[union-attr]
    assert CpConfig().insecure_no_auth is False  # secure by default

    monkeypatch.setenv("TRANSPORTER_TOKEN", "tpt_from_env")
    produce = cli.parse(["produce", "k8s", "--agent", "a", "--manifest", "m.yaml"])
    assert isinstance(produce, ProduceConfig) and produce.token == "tpt_from_env"
    assert "tpt_from_env" not in repr(produce)
    query = cli.parse(["produce", "get", "events", "--token", "tpt_from_flag"])
    assert isinstance(query, QueryConfig) and query.token == "tpt_from_flag"


def test_the_store_token_create_makes_first_is_its_owners_alone(tmp_path: Path) -> None:
    """As the README shows it, before the control plane's first start: every submitted Secret
    will be in that file, so no other local user may read it, whatever the umask."""
    data = tmp_path / "state" / "transporter"
    done = subprocess.run(
        ["sh", "-c", 'umask 022 && exec "$@"', "sh", *PYTHON_TRANSPORTER, "token", "create",
         "--name", "ci", "--role", "admin", "--data-dir", str(data)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert data.stat().st_mode & 0o777 == 0o700
    files = {p.name: p.stat().st_mode & 0o777 for p in data.iterdir()}
    assert "transporter.db" in files and set(files.values()) == {0o600}, files
