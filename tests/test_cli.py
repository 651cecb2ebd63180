"""The ``transporter`` command line: flags, environment variables, usage errors, clean stops."""

from __future__ import annotations

import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.bed.kube import Cluster
from tests.bed.process import started
from tests.bed.roles import (
    AGENT_LISTENING,
    PYTHON_TRANSPORTER,
    REGISTERED,
    clean_environment,
    create_bundle,
    running_cp,
    transporter,
)
from transporter import __version__, cli
from transporter.config.agent import AgentConfig
from transporter.config.cp import CpConfig
from transporter.config.produce import ProduceConfig, QueryConfig
from transporter.config.store_spec import StoreSpec
from transporter.config.values import Address


def run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return transporter(*argv, env=env)


TOKEN = "tpt_0123456789ab_" + "A" * 43
PLAIN_AGENT = ["agent", "--agent-id", "a", "--cp-url", "ws://c/ws", "--insecure-plain-ws"]


VERSION_LINE = re.compile(
    rf"^transporter {re.escape(__version__)} \(commit ([0-9a-f]{{12}}|unknown), built (\S+),"
    rf" Python {platform.python_version()}, linux/{platform.machine()}\)$"
)


def test_version_says_version_commit_build_python_and_platform() -> None:
    done = run("--version")
    assert done.returncode == 0, done.stderr
    found = VERSION_LINE.match(done.stdout.strip())
    assert found, done.stdout
    # From a checkout, the commit is the checkout's HEAD (read from .git, no git process).
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    if head:
        assert found.group(1) == head[:12]
    assert run("version").stdout == done.stdout
    for argv in (["--version", "-o", "json"], ["version", "-o", "json"], ["--version", "-ojson"]):
        shown = json.loads(run(*argv).stdout)
        assert shown["version"] == __version__
        assert shown["python"] == platform.python_version()
        assert shown["platform"] == f"linux/{platform.machine()}"
        assert set(shown) == {"version", "commit", "build_date", "python", "platform"}
    assert run("version", "-o", "xml").returncode == 2


def test_version_imports_almost_nothing() -> None:
    """``--version`` is answered before any parser is built: no argparse, no attrs, nothing
    of the roles (the single file starts in its time budget)."""
    code = (
        "import sys; from transporter.cli import main; main(['--version']);"
        " print(sorted(m for m in sys.modules if m.split('.')[0] in"
        " ('argparse', 'attrs', 'attr', 'trio', 'rich', 'json', 'transporter')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = json.loads(done.stdout.splitlines()[-1].replace("'", '"'))
    assert loaded == ["transporter", "transporter.buildinfo", "transporter.cli"]


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["cp", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
        (["cp", "--listen", "nowhere"], "--listen: 'nowhere' is not HOST:PORT"),
        (["cp", "--listen", "1.2.3.4:70000"], "port 70000"),
        (["cp", "--store", "mysql://x"], "scheme must be"),
        (["cp", "--store", "redis://h:1/0", "--redis-addr", "h:1"], "not both"),
        (["agent", "--cp-url", "wss://cp:8443/ws"], "--bundle is required"),
        (["agent", "--agent-id", "a", "--cp-url", "ws://cp:8443/ws"], "--insecure-plain-ws"),
        (
            ["agent", "--cp-url", "ws://cp:8443/ws", "--insecure-plain-ws"],
            "--agent-id is required without --bundle",
        ),
        (["cp", "--ca-cert", "ca.crt"], "--ca-cert and --ca-key together"),
        (["bundle", "create", "--agent-id", "a"], "--out is required"),
        (["bundle", "revoke"], "required: SERIAL|FINGERPRINT"),
        (["agent", "--agent-id", "Bad_Id", "--cp-url", "ws://cp/ws"], "agent id 'Bad_Id'"),
        (["agent", "--agent-id", "a", "--cp-url", "http://cp/ws"], "not a ws:// or wss://"),
        (
            ["agent", "--agent-id", "a", "--cp-url", "ws://cp/ws", "--label", "novalue"],
            "not KEY=VALUE",
        ),
        (["produce", "k8s", "--agent", "a"], "--manifest is required"),
        (
            ["produce", "k8s", "--agent", "a", "--manifest", "m.yaml", "--timeout", "-1"],
            "greater than 0",
        ),
        (["produce", "k8s", "--agent", "a", "--manifest", "m.yaml", "-o", "xml"], "invalid choice"),
        (["nonsense"], "invalid choice"),
        ([], "required"),
        (["cp", "--api-tls-cert", "c.pem"], "--api-tls-cert and --api-tls-key together"),
        (
            ["produce", "get", "agents", "--cp-url", "http://cp.example:8080", "--token", TOKEN],
            "plain HTTP and not this host: the token would cross the network readable",
        ),
        (["produce", "get", "agents", "--token", TOKEN + "!"], "holds the character U+0021"),
        (["produce", "get", "agents", "--token", "not-a-token"], "is not a transporter token"),
        ([*PLAIN_AGENT, "--impersonate", "everyone"], "invalid choice"),
        ([*PLAIN_AGENT, "--state-namespace", "Bad_NS"], "namespace 'Bad_NS'"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(argv: list[str], complaint: str) -> None:
    done = run(*argv)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert complaint in lines[0]
    assert "Traceback" not in done.stderr


def test_a_token_with_a_line_ending_is_taken_and_a_bad_one_never_shown() -> None:
    """From a file written on Windows, a token ends with a carriage return: it is dropped."""
    parsed = cli.parse(["produce", "get", "agents", "--token", TOKEN + "\r\n"])
    assert parsed.token == TOKEN  # type: ignore[union-attr]
    done = run("produce", "get", "agents", "--token", TOKEN[:20] + "\r" + TOKEN[20:])
    assert done.returncode == 2
    assert "a carriage return at position 21" in done.stderr
    assert TOKEN[20:] not in done.stderr and "Traceback" not in done.stderr


def test_a_token_may_go_in_cleartext_to_this_host_only() -> None:
    for url in ("http://127.0.0.1:8080", "http://localhost:8080", "http://[::1]", "https://cp.x"):
        parsed = cli.parse(["produce", "get", "agents", "--cp-url", url, "--token", TOKEN])
        assert isinstance(parsed, QueryConfig) and parsed.token == TOKEN
    parsed = cli.parse(["produce", "get", "agents", "--cp-url", "http://cp.example:8080"])
    assert isinstance(parsed, QueryConfig) and parsed.token is None  # nothing to protect


def test_a_control_plane_on_a_busy_port_says_so_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for flag, other in (("--listen", "--agent-listen"), ("--agent-listen", "--listen")):
            done = run(
                "cp", flag, f"127.0.0.1:{port}", other, "127.0.0.1:0", "--data-dir", str(tmp_path)
            )
            assert done.returncode == 1, done.stderr
            last = done.stderr.strip().splitlines()[-1]
            assert last == (
                f"transporter cp: error: cannot listen on 127.0.0.1:{port} ({flag}):"
                " Address already in use"
            )
            assert "Traceback" not in done.stderr


def test_flags_become_typed_settings(tmp_path: Path) -> None:
    flags = ["--listen", "127.0.0.1:9000", "--data-dir", str(tmp_path), "--redis-addr", "r:6379"]
    settings = cli.parse(["cp", *flags, "--log-format", "text"])
    assert settings == CpConfig(
        listen=Address("127.0.0.1", 9000),
        agent_listen=Address("0.0.0.0", 8443),  # noqa: S104
        data_dir=tmp_path,
        store=StoreSpec("redis", "redis://r:6379/0"),
    )
    assert cli.parse(["cp", "--data-dir", str(tmp_path)]).effective_store == StoreSpec(  # type: ignore[union-attr]
        "sqlite", f"sqlite://{tmp_path}/transporter.db", tmp_path / "transporter.db"
    )


def test_environment_variables_fill_flags_and_flags_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRANSPORTER_AGENT_ID", "from-env")
    monkeypatch.setenv("TRANSPORTER_CP_URL", "wss://cp.example:8443/ws")
    monkeypatch.setenv("TRANSPORTER_LABEL", "env=prod,region=eu-west-1")
    monkeypatch.setenv("TRANSPORTER_DEBUG", "true")
    monkeypatch.setenv("TRANSPORTER_BUNDLE", "/etc/transporter/bundle")
    monkeypatch.setenv("TRANSPORTER_LOG_FORMAT", "json")
    settings = cli.parse(["agent", "--agent-id", "from-flag"])
    assert settings == AgentConfig(
        agent_id="from-flag",
        cluster_name="from-flag",
        bundle=Path("/etc/transporter/bundle"),
        cp_urls=("wss://cp.example:8443/ws",),
        labels={"env": "prod", "region": "eu-west-1"},
        debug=True,
        log_format="json",
    )
    monkeypatch.delenv("TRANSPORTER_CP_URL")  # the producer's --cp-url is an http:// URL
    monkeypatch.setenv("TRANSPORTER_WAIT", "yes")
    monkeypatch.setenv("TRANSPORTER_TIMEOUT", "12.5")
    produce = cli.parse(["produce", "k8s", "--agent", "a", "--manifest", "x.yaml"])
    assert isinstance(produce, ProduceConfig)
    assert (produce.wait, produce.timeout, produce.manifests) == (True, 12.5, (Path("x.yaml"),))


def test_a_bad_environment_value_names_the_variable() -> None:
    done = run("cp", env={"TRANSPORTER_LISTEN": "bogus", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 2
    assert "TRANSPORTER_LISTEN: 'bogus' is not HOST:PORT" in done.stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_cp_answers_healthz_and_stops_cleanly_on_a_signal(tmp_path: Path, signum: int) -> None:
    with running_cp(tmp_path) as cp:
        with urllib.request.urlopen(
            f"{cp.api_url}/healthz", timeout=10, context=cp.api_context
        ) as answer:
            assert answer.status == 200
            assert json.load(answer) == {"status": "ok", "version": __version__}
        assert cp.stop(signum) == 0
    assert "Traceback" not in cp.output
    assert "shutting down" in cp.output


def test_the_agent_policy_file_comes_from_the_flag_or_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    argv = ["agent", "--agent-id", "a", "--cp-url", "ws://cp/ws", "--insecure-plain-ws"]
    argv += ["--log-format", "text"]
    assert cli.parse(argv) == AgentConfig(
        agent_id="a", cluster_name="a", cp_urls=("ws://cp/ws",), insecure_plain_ws=True
    )
    monkeypatch.setenv("TRANSPORTER_POLICY", str(tmp_path / "env.yaml"))
    assert cli.parse(argv).policy == tmp_path / "env.yaml"  # type: ignore[union-attr]
    flagged = cli.parse([*argv, "--policy", str(tmp_path / "flag.yaml")])
    assert flagged.policy == tmp_path / "flag.yaml"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("kinds: ['*']\nallow: [everything]\n", "allow[0]: unknown allowance 'everything'"),
        ("namespace: [team-a]\n", "unknown key 'namespace'"),
        ("kinds: [unclosed\n", "not valid YAML"),
        (None, "cannot read it"),
    ],
)
def test_an_agent_with_a_bad_policy_file_refuses_to_start(
    tmp_path: Path, text: str | None, complaint: str
) -> None:
    policy = tmp_path / "policy.yaml"
    if text is not None:
        policy.write_text(text)
    done = run(
        "agent",
        "--agent-id",
        "a",
        "--cp-url",
        "ws://cp.invalid/ws",
        "--insecure-plain-ws",
        # Were the policy read after the cluster, this would fail differently (exit 1).
        "--kubeconfig",
        str(tmp_path / "no-such-kubeconfig"),
        env={"TRANSPORTER_POLICY": str(policy), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"transporter agent: error: policy file {policy}: ")
    assert complaint in lines[0]


def test_a_user_without_a_home_is_told_to_give_a_data_dir(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A container's arbitrary uid: not root, no HOME, no entry in /etc/passwd. The default
    data folder cannot be found: one line naming --data-dir, exit 2, no traceback."""
    monkeypatch.delenv("HOME", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.delenv("TRANSPORTER_DATA_DIR", raising=False)
    monkeypatch.setattr(os, "geteuid", lambda: 1000654321)
    monkeypatch.setattr(os, "getuid", lambda: 1000654321)
    for argv in (["cp"], ["token", "list"], ["bundle", "create", "--agent-id", "a", "--out", "b"]):
        with pytest.raises(SystemExit) as stopped:
            cli.parse(argv)
        assert stopped.value.code == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1, error
        assert "uid 1000654321 has no home folder" in error
        assert "give --data-dir DIR or TRANSPORTER_DATA_DIR" in error
    settings = cli.parse(["cp", "--data-dir", "/srv/transporter", "--log-format", "text"])
    assert isinstance(settings, CpConfig) and settings.data_dir == Path("/srv/transporter")


def test_a_data_folder_that_cannot_be_made_names_the_flag(tmp_path: Path) -> None:
    """A read-only root (here: a folder under a file): one line naming --data-dir, exit 2."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    done = run("cp", "--data-dir", str(blocker / "data"), "--listen", "127.0.0.1:0")
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert f"cannot make the data folder {blocker / 'data'}" in done.stderr
    assert "give --data-dir DIR (or TRANSPORTER_DATA_DIR)" in done.stderr
    assert "read-only root" in run("cp", "--help").stdout


def test_a_connected_agent_stops_within_a_second_of_sigterm(
    tmp_path: Path, cluster: Cluster
) -> None:
    """SIGTERM to an agent connected to a control plane: it closes its connection (the close
    frame sent, no answer awaited: its reader is stopping too) and exits 0 within 1 s."""
    with running_cp(tmp_path / "cp") as cp:
        found = AGENT_LISTENING.search(cp.output)
        assert found is not None, cp.output
        bundle = create_bundle(tmp_path / "cp", "stops-1", tmp_path / "bundle")
        argv = [*PYTHON_TRANSPORTER, "agent", "--bundle", str(bundle), "--cp-url", found.group(1)]
        argv += ["--kubeconfig", str(cluster.kubeconfig)]
        with started(argv, REGISTERED, env=clean_environment()) as (agent, _):
            sent = time.monotonic()
            agent.popen.send_signal(signal.SIGTERM)
            code = agent.popen.wait(timeout=30)
            took = time.monotonic() - sent
        assert code == 0, agent.tail()
        assert took < 1.0, f"stopped {took:.2f} s after SIGTERM\n{agent.tail()}"
        cp.process.wait_for(re.compile("agent stops-1 disconnected"))
    assert "Traceback" not in agent.output


def _leaf_commands() -> list[tuple[str, ...]]:
    from transporter.cli.completion import walk

    return [node.path for node in walk(cli.build_parser()) if node.path]


@pytest.mark.parametrize("path", _leaf_commands(), ids=" ".join)
def test_every_commands_help_says_what_it_does_with_an_example(path: tuple[str, ...]) -> None:
    done = run(*path, "--help")
    assert done.returncode == 0, done.stderr
    usage, description = done.stdout.split("\n\n")[:2]
    assert usage.startswith(f"usage: transporter {' '.join(path)}")
    assert description.strip().endswith(".") and len(description.split()) >= 4, description
    examples = done.stdout.split("\nexamples:\n")[1]
    commands = [line.split()[:2] for line in examples.splitlines() if line.startswith("  ")]
    assert ["transporter", path[0]] in commands, examples


def test_every_role_takes_log_format(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--log-format`` (or its variable) on cp, agent and produce; json by default here, where
    stderr is not a terminal."""
    monkeypatch.delenv("TRANSPORTER_LOG_FORMAT", raising=False)
    roles = (
        ["cp", "--data-dir", "/srv/tp"],
        PLAIN_AGENT,
        ["produce", "k8s", "--agent", "a", "--manifest", "m.yaml"],
        ["produce", "get", "events"],
    )
    for argv in roles:
        assert cli.parse(argv).log_format == "json"  # type: ignore[union-attr]
        assert cli.parse([*argv, "--log-format", "text"]).log_format == "text"  # type: ignore[union-attr]
    monkeypatch.setenv("TRANSPORTER_LOG_FORMAT", "text")
    assert all(cli.parse(argv).log_format == "text" for argv in roles)  # type: ignore[union-attr]
    assert run("cp", "--log-format", "xml").returncode == 2


def test_a_control_plane_without_tokens_says_how_to_make_one_for_its_store(
    tmp_path: Path,
) -> None:
    with running_cp(tmp_path) as cp:
        hint = f"`transporter token create --name NAME --role admin --data-dir {tmp_path}`"
        cp.process.wait_for(re.compile(re.escape(hint)))
