"""What the command line costs a role that runs until stopped: ``transporter agent`` and
``transporter cp`` build their own command's parser alone (cli/app.py), so that neither loads the
other commands' modules (the producer's, rich's tables, the admin commands') for nothing, and an
agent not the store's settings either (issue 15: an idle agent's and control plane's RSS). What
the command line prints is the same as with the whole tree."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import pytest

from tests.bed.kube import Cluster
from tests.bed.process import started
from tests.bed.roles import (
    AGENT_LISTENING,
    REGISTERED,
    clean_environment,
    create_bundle,
    running_cp,
)
from transporter.cli import app
from transporter.cli.commands import Parser
from transporter.cli.completion import Node, walk

IMPORTTIME = (sys.executable, "-X", "importtime", "-m", "transporter")
OTHER_COMMANDS = (
    "rich",
    "transporter.produce",
    "transporter.config.produce",
    "transporter.config.admin",
    "transporter.cli.produce",
    "transporter.cli.produce_queue",
    "transporter.cli.produce_reach",
    "transporter.cli.produce_rollouts",
    "transporter.cli.rollout_flags",
    "transporter.cli.audit",
    "transporter.cli.tokens",
    "transporter.cli.bundles",
    "transporter.cli.version",
    "transporter.cli.completion",
)
"""What neither role imports: the producer (its commands, rich, its settings), the admin
commands and their settings, ``version`` and ``completion``."""
NOT_THE_AGENTS = (
    "transporter.cli.cp",
    "transporter.config.cp",
    "transporter.config.store_spec",
    "transporter.config.redis_url",
)
"""What the agent does without besides: the control plane's flags and the store's settings."""


def imported(lines: Sequence[str]) -> set[str]:
    """The modules ``python -X importtime`` reported loading."""
    return {
        line.rsplit("|", 1)[1].strip()
        for line in lines
        if line.startswith("import time:") and line.count("|") == 2
    }


def among(modules: set[str], packages: Sequence[str]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in packages))


NOT_THE_AGENTS_CLIENT = ("trio_websocket", "wsproto", "h11")
"""The WebSocket libraries the agent does without: it speaks the upgrade and the frames itself
(agent/upgrade.py, agent/websocket.py); the control plane still reads the upgrade with wsproto."""


@pytest.fixture(scope="module")
def registered(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> tuple[set[str], set[str]]:
    """What a registered agent and its control plane imported (``-X importtime``)."""
    tmp_path = tmp_path_factory.mktemp("imports")
    data = tmp_path / "cp"
    with running_cp(data, command=IMPORTTIME) as cp:
        found = AGENT_LISTENING.search(cp.output)
        assert found is not None, cp.output
        bundle = create_bundle(data, "lean-cli", tmp_path / "bundle")
        argv = [*IMPORTTIME, "agent", "--bundle", str(bundle), "--cp-url", found.group(1)]
        argv += ["--kubeconfig", str(cluster.kubeconfig)]
        with started(argv, REGISTERED, env=clean_environment()) as (agent, _):
            agent_modules = imported(agent.lines)
        cp_modules = imported(cp.lines)
    return agent_modules, cp_modules


def test_a_registered_agent_and_its_control_plane_import_no_other_command(
    registered: tuple[set[str], set[str]],
) -> None:
    agent_modules, cp_modules = registered
    # The report is read right: each role's own modules are in it.
    assert {"transporter.cli.agent", "transporter.agent.session"} <= agent_modules
    assert {"transporter.cli.cp", "transporter.cp.main"} <= cp_modules
    assert among(agent_modules, OTHER_COMMANDS + NOT_THE_AGENTS) == []
    assert among(cp_modules, (*OTHER_COMMANDS, "transporter.cli.agent")) == []


def test_the_control_plane_never_loads_cryptography(
    registered: tuple[set[str], set[str]],
) -> None:
    """Its key files are read in a child process (cp/key_request.py), and it signs events
    through the OpenSSL its TLS loaded: cryptography's 11 MiB stay out of its memory."""
    _, cp_modules = registered
    assert {"transporter.cp.key_request", "transporter.security.ed25519"} <= cp_modules
    child_only = ("cryptography", "transporter.cp.pki", "transporter.cp.key_files")
    assert among(cp_modules, (*child_only, "transporter.cp.key_child")) == []


def test_a_registered_agent_imports_no_websocket_library(
    registered: tuple[set[str], set[str]],
) -> None:
    agent_modules, cp_modules = registered
    assert {"transporter.agent.upgrade", "transporter.agent.websocket"} <= agent_modules
    assert among(agent_modules, NOT_THE_AGENTS_CLIENT) == []
    assert "wsproto" in cp_modules  # the report would show them


def outcome(parser: Parser, argv: list[str], capsys: pytest.CaptureFixture[str]) -> object:
    """What parsing ``argv`` with ``parser`` gives: the settings, else the exit code and what
    was printed."""
    try:
        namespace = parser.parse_args(argv)
        return namespace.settings_of(namespace)
    except SystemExit as exc:
        printed = capsys.readouterr()
        return exc.code, printed.out, printed.err


@pytest.mark.parametrize(
    "argv",
    [
        ["agent", "--help"],
        ["agent"],
        ["agent", "--no-such-flag"],
        ["agent", "--bundle"],
        ["agent", "--bundle", "/nonexistent", "--cp-url", "wss://cp.example:8443/ws"],
        ["agent", "--insecure-plain-ws", "--cp-url", "ws://cp:80/ws", "--agent-id", "a"],
        ["cp", "-h"],
        ["cp", "--listen", "nowhere", "--data-dir", "/nonexistent"],
        ["cp", "--store", "ftp://x", "--data-dir", "/nonexistent"],
        ["cp", "--store", "redis://r:6379/0", "--redis-addr", "r:6379"],
        ["cp", "--data-dir", "/nonexistent", "extra"],
        ["cp", "--data-dir", "/nonexistent", "--store", "redis://r:6379/0"],
    ],
)
def test_a_role_alone_in_the_tree_parses_and_prints_as_in_the_whole_tree(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    alone, whole = app.build_parser([argv[0]]), app.build_parser()
    role = tree(alone)
    assert [name for name, _ in role[()].commands] == [argv[0]]
    assert {path: node for path, node in tree(whole).items() if path[:1] == (argv[0],)} == {
        path: node for path, node in role.items() if path
    }
    assert outcome(alone, argv, capsys) == outcome(whole, argv, capsys)


@pytest.mark.parametrize(
    "argv", [[], ["agent", "--help"], ["cp", "-h"], ["agnt"], ["--debug", "agent"], ["produce"]]
)
def test_help_and_every_other_command_line_build_the_whole_tree(argv: list[str]) -> None:
    assert tree(app.build_parser(argv)) == tree(app.build_parser())


def tree(parser: Parser) -> dict[tuple[str, ...], Node]:
    """Each command of ``parser``'s tree by its path, as completion reads it: its subcommands,
    flags and choices."""
    return {node.path: node for node in walk(parser)}
