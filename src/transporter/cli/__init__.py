"""The ``transporter`` command: ``cp``, ``agent`` and ``produce``, ``audit verify``, ``token`` and
``bundle``.

This package parses flags into the typed settings of :mod:`transporter.config` and hands them to
the role: one module per command (its flags, and its settings from them), with the flag machinery
in :mod:`.flags`, the parsers in :mod:`.commands` and what several commands share in
:mod:`.shared`. It imports no heavy library at module level, so that ``--version`` and ``--help``
start fast from the single-file build; each role's libraries are imported when the role runs.

Every flag can also come from an environment variable ``TRANSPORTER_<FLAG>`` (``--agent-id`` is
``TRANSPORTER_AGENT_ID``); a flag on the command line wins over the variable. Repeatable flags take
a comma-separated list from their variable.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from transporter import __version__
from transporter.cli import agent, audit, bundles, cp, produce, tokens
from transporter.cli.commands import Parser, subcommands
from transporter.config.admin import (
    AuditVerifyConfig,
    BundleCreateConfig,
    BundleRevokeConfig,
    TokenCreateConfig,
    TokenListConfig,
    TokenRevokeConfig,
)
from transporter.config.agent import AgentConfig
from transporter.config.cp import CpConfig
from transporter.config.produce import ProduceConfig, QueryConfig

Settings = (
    CpConfig
    | AgentConfig
    | ProduceConfig
    | QueryConfig
    | AuditVerifyConfig
    | TokenCreateConfig
    | TokenListConfig
    | TokenRevokeConfig
    | BundleCreateConfig
    | BundleRevokeConfig
)


def build_parser() -> Parser:
    root = Parser(
        prog="transporter",
        description="Manage Kubernetes resources on clusters whose agents dial out to you.",
    )
    root.add_argument("--version", action="version", version=f"transporter {__version__}")
    commands = subcommands(root, "command")
    for command in (cp, agent, produce, audit, tokens, bundles):
        command.add(commands)
    return root


def parse(argv: Sequence[str]) -> Settings:
    """Parse a command line into the settings of one role. Usage errors exit with code 2."""
    namespace = build_parser().parse_args(argv)
    # Each leaf command's parser left the function that makes its settings (commands.py).
    settings: Settings = namespace.settings_of(namespace)
    return settings


def main(argv: Sequence[str] | None = None) -> int:
    # Whatever a command writes (the store, keys, bundles) is its owner's alone, whoever runs it.
    os.umask(0o077)
    settings = parse(sys.argv[1:] if argv is None else argv)
    # Each role's heavy imports happen here, not at the top of this module.
    if isinstance(settings, CpConfig):
        from transporter.cp.main import main as cp_main

        return cp_main(settings)
    if isinstance(settings, AgentConfig):
        from transporter.agent.main import main as agent_main

        return agent_main(settings)
    if isinstance(settings, AuditVerifyConfig):
        return audit.verify(settings)
    if isinstance(settings, TokenCreateConfig | TokenListConfig | TokenRevokeConfig):
        from transporter.cp.admin.tokens import main as token_main

        return token_main(settings)
    if isinstance(settings, BundleCreateConfig):
        from transporter.cp.admin.bundles import create_main

        return create_main(settings)
    if isinstance(settings, BundleRevokeConfig):
        from transporter.cp.admin.bundles import revoke_main

        return revoke_main(settings)
    from transporter.produce.main import main as produce_main

    return produce_main(settings)
