"""No log line holds a token, a password or a private key, whoever writes it; no client value
can forge or hide a line. The guard alone, then a real control plane at debug level."""

from __future__ import annotations

import datetime
import json
import logging
import re
import ssl
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.bed.kube import Cluster
from tests.bed.process import started
from tests.bed.roles import (
    PYTHON_TRANSPORTER,
    REGISTERED,
    clean_environment,
    create_bundle,
    create_token,
    running_cp,
    transporter,
)
from transporter.logs import Guard, JsonFormatter, escape, scrub

TOKEN = "tpt_0123456789ab_" + "s3cretS3cretS3cretS3cretS3cretS3cretS3cr"
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YTpiIn0.c2lnbmF0dXJlLXNpZw"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"Authorization: Bearer {TOKEN}", TOKEN.rsplit("_", 1)[1]),
        (f"(b'authorization', b'Bearer {JWT}')", JWT),
        (f"token {TOKEN} refused", TOKEN.rsplit("_", 1)[1]),
        ("redis://user:hunter2hunter2@redis:6379/0", "hunter2hunter2"),
        ("Authorization: Basic dXNlcjpodW50ZXIy", "dXNlcjpodW50ZXIy"),
        ('{"password": "hunter2hunter2"}', "hunter2hunter2"),
        ("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEI\n-----END EC PRIVATE KEY-----", "MHcCAQEEI"),
    ],
)
def test_secrets_of_every_known_shape_are_scrubbed(text: str, secret: str) -> None:
    assert secret not in scrub(text)
    assert "<redacted>" in scrub(text)


def test_what_is_not_a_secret_stays() -> None:
    for text in (
        "the API needs a bearer token and there is none yet",
        "refused: token:ci-deploy 403 GET /events",
        "created token 3f9c2a71b0de 'ci-deploy', role submit",
    ):
        assert scrub(text) == text


def test_client_values_can_neither_forge_nor_hide_a_line() -> None:
    assert escape("/events%0A") == "/events%0A"
    assert escape("/events\n12:00:00 INFO forged") == "/events\\n12:00:00 INFO forged"
    assert escape("a\rb\x1b[2Jc\u202ed\u2028") == "a\\rb\\x1b[2Jc\\u202ed\\u2028"


def test_the_guard_escapes_arguments_and_scrubs_whatever_a_library_logs() -> None:
    guard = Guard()
    ours = logging.LogRecord("transporter.cp", logging.INFO, "", 0, "path %s", ("/x\nFAKE",), None)
    guard.filter(ours)
    assert ours.getMessage() == "path /x\\nFAKE"
    theirs = logging.LogRecord(
        "hpack.hpack", logging.DEBUG, "", 0, "%s", (f"Bearer {TOKEN}",), None
    )
    guard.filter(theirs)
    assert TOKEN not in theirs.getMessage()
    try:
        raise ValueError(f"header {TOKEN}")
    except ValueError:
        import sys

        failed = logging.LogRecord("x", logging.ERROR, "", 0, "failed", (), sys.exc_info())
    guard.filter(failed)
    assert failed.exc_text is not None and TOKEN not in failed.exc_text


def test_a_control_plane_at_debug_level_logs_no_token_and_no_forged_line(tmp_path: Path) -> None:
    with running_cp(tmp_path, "--debug") as cp:
        token = cp.new_token("ops", "admin")
        for path in ("/events", "/events%0A12:00:00%20INFO%20forged", "/nowhere%0D%0AX:%20y"):
            request = urllib.request.Request(
                cp.api_url + path,
                headers={"Authorization": f"Bearer {token}x"},  # refused: logged with its path
            )
            try:
                urllib.request.urlopen(request, timeout=10, context=cp.api_context)
            except urllib.error.HTTPError as exc:
                exc.close()
        request = urllib.request.Request(
            cp.api_url + "/events", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=10, context=cp.api_context) as answer:
            assert answer.status == 200
    output = cp.output
    secret = token.rsplit("_", 1)[1]
    assert secret not in output
    assert "refused:" in output and "401 GET /events" in output  # the requests were logged
    lines = output.splitlines()
    assert not any(line.startswith("12:00:00 INFO forged") for line in lines)
    assert any("\\n12:00:00 INFO forged" in line for line in lines), output[-2000:]


API_URL = re.compile(r"API listening on (https?://[^\s\"\\]+)")
AGENT_URL = re.compile(r"agent channel listening on (wss://[^\s\"\\]+)")


def _cp_argv(data_dir: Path, *extra: str) -> list[str]:
    listen = ["--listen", "127.0.0.1:0", "--agent-listen", "127.0.0.1:0"]
    return [*PYTHON_TRANSPORTER, "cp", *listen, "--data-dir", str(data_dir), *extra]


def _refused(url: str, ca: Path, path: str) -> None:
    request = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {TOKEN}"})
    context = ssl.create_default_context(cafile=str(ca))
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10, context=context)
    refused.value.close()


def _when(text: str) -> datetime.datetime:
    """An ISO 8601 time with its zone (a naive one fails the test)."""
    moment = datetime.datetime.fromisoformat(text)
    assert moment.tzinfo is not None, text
    assert abs(moment - datetime.datetime.now(datetime.UTC)) < datetime.timedelta(minutes=10)
    return moment


def test_json_is_the_default_off_a_terminal_one_object_a_line(tmp_path: Path) -> None:
    """Off a terminal (a collector reads stderr) every line is one JSON object: an ISO 8601
    time with its zone, the level, the logger, the message; a client's value escaped in it and
    a token redacted from it, as in text."""
    env = {k: v for k, v in clean_environment().items() if k != "TRANSPORTER_LOG_FORMAT"}
    with started(_cp_argv(tmp_path), API_URL, env=env) as (cp, (url,)):
        _refused(url, tmp_path / "ca.crt", "/events%0A2026-01-01T00:00:00Z%20INFO%20forged")
        cp.wait_for(re.compile("refused:"))
    lines = [line for line in cp.output.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line, or this fails
    for record in records:
        _when(record["time"])
        assert record["time"].endswith("Z")
        assert record["level"] in ("debug", "info", "warning", "error", "critical")
        assert record["logger"].startswith("transporter") or record["logger"]
    refused = next(record for record in records if record["msg"].startswith("refused:"))
    assert "\\n2026-01-01T00:00:00Z INFO forged" in refused["msg"]
    assert TOKEN.rsplit("_", 1)[1] not in cp.output


def test_text_lines_carry_an_iso_time_with_its_zone(tmp_path: Path) -> None:
    argv = _cp_argv(tmp_path, "--log-format", "text")
    with started(argv, API_URL, env=clean_environment()) as (cp, _):
        pass
    lines = [line for line in cp.output.splitlines() if line.strip()]
    assert lines
    for line in lines:
        when, level, logger = line.split()[:3]
        _when(when)
        assert level in ("DEBUG", "INFO", "WARNING", "ERROR")
        assert logger.endswith(":")


def test_json_and_text_lines_name_the_event_and_the_agent(tmp_path: Path, cluster: Cluster) -> None:
    """The control plane names the agent a line is about in ``agent_id``; every line of the
    agent names it, and a line about an event names the event in ``event_id`` (here, the
    agent's policy refusing it); in text, as ``agent_id=...`` and ``event_id=...``."""
    argv = _cp_argv(tmp_path / "cp", "--log-format", "json")
    with started(argv, API_URL, AGENT_URL, env=clean_environment()) as (cp, (url, channel)):
        bundle = create_bundle(tmp_path / "cp", "logs-1", tmp_path / "bundle")
        agent_argv = [*PYTHON_TRANSPORTER, "agent", "--bundle", str(bundle), "--cp-url", channel]
        agent_argv += ["--kubeconfig", str(cluster.kubeconfig), "--log-format", "text"]
        with started(agent_argv, REGISTERED, env=clean_environment()) as (agent, _):
            manifest = tmp_path / "refused.yaml"
            manifest.write_text(
                "apiVersion: v1\nkind: ConfigMap\n"
                "metadata: {name: refused, namespace: kube-system}\ndata: {k: v}\n"
            )
            token = create_token("--data-dir", str(tmp_path / "cp"), name="t", role="admin")
            flags = ["--agent", "logs-1", "--wait", "--manifest", str(manifest), "-o", "name"]
            flags += ["--cp-url", url, "--ca-cert", str(tmp_path / "cp" / "ca.crt")]
            done = transporter(
                "produce",
                "k8s",
                *flags,
                env={**clean_environment(), "TRANSPORTER_TOKEN": token},
                timeout=120,
            )
            assert done.returncode == 1, done.stderr
            event_id = done.stdout.strip().removeprefix("event/")
            agent.wait_for(re.compile(f"event_id={event_id}"))
    records = [json.loads(line) for line in cp.output.splitlines() if line.strip()]
    connected = next(r for r in records if r["msg"].startswith("agent logs-1 connected"))
    assert connected["agent_id"] == "logs-1"
    agent_lines = [line for line in agent.output.splitlines() if line.strip()]
    assert all(line.endswith("agent_id=logs-1") or "event_id=" in line for line in agent_lines)
    refused = next(line for line in agent_lines if f"event_id={event_id}" in line)
    assert refused.endswith(f"event_id={event_id} agent_id=logs-1"), refused
    assert "kube-system" in refused


def test_an_argument_that_is_not_a_string_cannot_forge_a_line_nor_bring_a_lone_surrogate() -> None:
    guard = Guard()
    record = logging.LogRecord(
        "transporter.agent.session",
        logging.WARNING,
        "",
        0,
        "event %s refused: %s",
        ("e1", ValueError("bad name 'a\n2026-12-06T00:00:00.000Z INFO  forged\x1b[2J'")),
        None,
    )
    guard.filter(record)
    message = record.getMessage()
    assert "\n" not in message and "\x1b" not in message
    assert "\\n2026-12-06" in message
    undecodable = logging.LogRecord(
        "transporter.cp", logging.INFO, "", 0, "path %s", ("/x\udc80y",), None
    )
    guard.filter(undecodable)
    assert undecodable.getMessage() == "path /x\\udc80y"
    line = JsonFormatter().format(undecodable)
    assert json.loads(line)["msg"] == "path /x\\udc80y"


def test_a_traceback_in_text_cannot_forge_a_log_line() -> None:
    """An exception's message may carry client text: under its line, every line of the
    traceback is indented and escaped, so none looks like a log line of its own."""
    from transporter.logs import Guard, TextFormatter

    forged = "2026-12-06T00:00:00.000Z INFO  transporter.cp: agent site-9 connected"
    try:
        raise ValueError(f"bad path\n{forged}\x1b[31m")
    except ValueError:
        record = logging.LogRecord(
            "transporter.cp", logging.ERROR, "", 0, "failed", (), sys.exc_info()
        )
    Guard().filter(record)
    lines = TextFormatter().format(record).splitlines()
    assert lines[0].endswith("failed")
    assert all(line.startswith("  ") for line in lines[1:]), lines
    assert any(forged in line for line in lines) and not any("\x1b" in line for line in lines)
