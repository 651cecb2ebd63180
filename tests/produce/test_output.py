"""``-o text|wide|name|json|yaml`` and ``--no-headers`` on real commands, and the exit codes the
README's table gives for what is not there."""

from __future__ import annotations

import datetime
import json
import subprocess
from pathlib import Path

import yaml

from tests.bed.roles import clean_environment, running_cp, transporter


def run(*argv: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    return transporter(
        *argv, env=clean_environment() | ({"TRANSPORTER_TOKEN": token} if token else {})
    )


def _rfc3339(text: str) -> datetime.datetime:
    assert text.endswith("Z"), text
    return datetime.datetime.fromisoformat(text)


def test_token_list_in_every_format(tmp_path: Path) -> None:
    where = ("--data-dir", str(tmp_path))
    made = run("token", "create", "--name", "ci", "--role", "submit", "--agents", "a-*", *where)
    assert made.returncode == 0, made.stderr
    token_id = made.stdout.strip().split("_")[1]
    shown = yaml.safe_load(run("token", "list", "-o", "yaml", *where).stdout)
    assert [t["id"] for t in shown] == [token_id] and shown[0]["agents"] == ["a-*"]
    assert _rfc3339(shown[0]["created_at"]).year >= 2026 and shown[0]["revoked_at"] is None
    assert json.loads(run("token", "list", "-o", "json", *where).stdout) == shown
    assert run("token", "list", "-o", "name", *where).stdout == f"token/{token_id}\n"
    table = run("token", "list", *where).stdout.splitlines()
    assert table[0].split()[:2] == ["ID", "NAME"] and table[1].startswith(token_id)
    bare = run("token", "list", "--no-headers", *where).stdout.splitlines()
    assert [row.split() for row in bare] == [row.split() for row in table[1:]]
    # The hint names the store the token was made in: revoke works as printed.
    hint = made.stderr.split("Revoke it with: ")[1].strip()
    assert hint == f"transporter token revoke {token_id} --data-dir {tmp_path}"
    assert run(*hint.split()[1:]).returncode == 0


def test_produce_get_in_every_format_and_a_404_is_exit_1(tmp_path: Path) -> None:
    with running_cp(tmp_path) as cp:
        token = cp.new_token()
        reach = ("--cp-url", cp.api_url, "--ca-cert", str(tmp_path / "ca.crt"))
        for what in ("events", "agents"):
            assert (
                yaml.safe_load(
                    run("produce", "get", what, "-o", "yaml", *reach, token=token).stdout
                )
                == []
            )
            assert run("produce", "get", what, "-o", "name", *reach, token=token).stdout == ""
            wide = run("produce", "get", what, "-o", "wide", *reach, token=token)
            assert wide.returncode == 0 and wide.stdout.startswith("ID ")
            bare = run("produce", "get", what, "--no-headers", *reach, token=token)
            assert (bare.returncode, bare.stdout) == (0, "")
        for argv in (("event", "0" * 8 + "-0000-4000-8000-" + "0" * 12), ("agent", "nowhere")):
            missing = run("produce", "get", *argv, *reach, token=token)
            assert missing.returncode == 1, missing.stderr  # not found: exit 1, as the README says
            assert missing.stderr.count("\n") == 1 and "404" in missing.stderr
    gone = run("token", "list", "--data-dir", str(tmp_path / "nowhere"))
    assert gone.returncode == 2 and "no store at" in gone.stderr  # pointed at no store: usage
