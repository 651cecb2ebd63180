"""The command tree: every command's parser, and the dispatch of its settings to the role.

A role that runs until stopped (``agent``, ``cp``) builds its own command's parser alone and
imports no other command's module: the producer's (rich's tables, its HTTP client, YAML), the
admin commands' and their settings would stay in its memory for nothing (issue 15: an idle
agent's RSS). Help, completion and every other command build the whole tree, so that what the
command line prints is the same either way.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from transporter import buildinfo
from transporter.cli.commands import HelpFormatter, Parser, Subcommands, subcommands

if TYPE_CHECKING:
    from transporter.cli.version import CompletionConfig, VersionConfig
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
    from transporter.config.produce import (
        ApplyPlanConfig,
        PlanConfig,
        ProduceConfig,
        QueryConfig,
        RolloutOpConfig,
    )

    Settings = (
        CpConfig
        | AgentConfig
        | ProduceConfig
        | QueryConfig
        | PlanConfig
        | ApplyPlanConfig
        | RolloutOpConfig
        | AuditVerifyConfig
        | TokenCreateConfig
        | TokenListConfig
        | TokenRevokeConfig
        | BundleCreateConfig
        | BundleRevokeConfig
        | VersionConfig
        | CompletionConfig
    )


EXAMPLES = """examples:
  transporter cp --data-dir /var/lib/transporter
  transporter token create --name ops --role admin --data-dir /var/lib/transporter
  transporter bundle create --agent-id site-1 --out site-1 --data-dir /var/lib/transporter
  transporter agent --bundle site-1 --cp-url wss://cp.example:8443/ws
  transporter produce k8s --agent site-1 --manifest app/ --wait
  transporter produce get events -o wide
  transporter completion bash > /etc/bash_completion.d/transporter

Every flag can also be set as TRANSPORTER_<FLAG> (--data-dir: TRANSPORTER_DATA_DIR).
Exit codes: 0 done, 1 failed (see each command), 2 bad usage."""

HELP = frozenset({"-h", "--help"})


def build_parser(argv: Sequence[str] = ()) -> Parser:
    """The parser of the command line ``argv``: the whole tree, or, for ``agent`` or ``cp`` not
    asked for help, the root with that command alone."""
    root = Parser(
        prog="transporter",
        description="Manage Kubernetes resources on clusters whose agents dial out to you.",
        epilog=EXAMPLES,
        formatter_class=HelpFormatter,
    )
    root.add_argument(
        "--version",
        action="version",
        version=buildinfo.text(),
        help="print the version, commit, build date, Python and platform (-o json: as JSON)",
    )
    commands = subcommands(root, "command")
    for add in _commands(argv):
        add(commands)
    return root


def _commands(argv: Sequence[str]) -> tuple[Callable[[Subcommands], None], ...]:
    """What adds each command that ``argv`` may need to the tree, in the order help lists them.
    A command's subparser prints the same help and errors whatever else the tree holds."""
    alone = argv[0] if argv and HELP.isdisjoint(argv) else None
    if alone == "agent":
        from transporter.cli import agent

        return (agent.add,)
    if alone == "cp":
        from transporter.cli import cp

        return (cp.add,)
    from transporter.cli import agent, audit, bundles, cp, produce, tokens, version

    return (cp.add, agent.add, produce.add, audit.add, tokens.add, bundles.add, version.add)


def parse(argv: Sequence[str]) -> Settings:
    """Parse a command line into the settings of one role. Usage errors exit with code 2."""
    namespace = build_parser(argv).parse_args(argv)
    # Each leaf command's parser left the function that makes its settings (commands.py).
    settings: Settings = namespace.settings_of(namespace)
    return settings


def run(argv: Sequence[str]) -> int:
    """Run the command ``argv`` names; its exit code."""
    # Whatever a command writes (the store, keys, bundles) is its owner's alone, whoever runs it.
    os.umask(0o077)
    settings = parse(argv)
    # Each role's heavy imports happen here, not at the top of this module; the agent's and the
    # control plane's settings are told first, before the other commands' modules are imported.
    from transporter.config.agent import AgentConfig

    if isinstance(settings, AgentConfig):
        from transporter.agent.main import main as agent_main

        return agent_main(settings)
    from transporter.config.cp import CpConfig

    if isinstance(settings, CpConfig):
        from transporter.cp.main import main as cp_main

        return cp_main(settings)
    from transporter.cli import audit, completion, version
    from transporter.config.admin import (
        AuditVerifyConfig,
        BundleCreateConfig,
        BundleRevokeConfig,
        TokenCreateConfig,
        TokenListConfig,
        TokenRevokeConfig,
    )

    if isinstance(settings, version.VersionConfig):
        return buildinfo.show(settings.output)
    if isinstance(settings, version.CompletionConfig):
        sys.stdout.write(completion.script(build_parser(), settings.shell))
        return 0
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
