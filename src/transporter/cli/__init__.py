"""The ``transporter`` command: ``cp``, ``agent`` and ``produce``, ``audit verify``, ``token``,
``bundle``, ``version`` and ``completion``.

This package parses flags into the typed settings of :mod:`transporter.config` and hands them to
the role: one module per command (its flags, and its settings from them), with the flag machinery
in :mod:`.flags`, the parsers in :mod:`.commands`, what several commands share in :mod:`.shared`
and the tree in :mod:`.app`. This module imports almost nothing: ``--version`` is answered from
:mod:`transporter.buildinfo` before any parser is built, and each role's libraries are imported
when the role runs, so that the single file starts fast. ``agent`` and ``cp`` build their own
command's parser alone, so that the other commands' modules stay out of their memory.

Every flag can also come from an environment variable ``TRANSPORTER_<FLAG>`` (``--agent-id`` is
``TRANSPORTER_AGENT_ID``); a flag on the command line wins over the variable. Repeatable flags take
a comma-separated list from their variable.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from transporter import buildinfo

if TYPE_CHECKING:
    from transporter.cli.app import Settings
    from transporter.cli.commands import Parser


def build_parser() -> Parser:
    """The whole command line's parser."""
    from transporter.cli import app

    return app.build_parser()


def parse(argv: Sequence[str]) -> Settings:
    """Parse a command line into the settings of one command. Usage errors exit with code 2."""
    from transporter.cli import app

    return app.parse(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    answered = buildinfo.answer(args)
    if answered is not None:
        return answered
    if args[:1] == ["__cp-keys"]:  # the control plane's child (transporter.cp.key_request)
        from transporter.cp.key_child import main as key_child

        return key_child()
    from transporter.cli import app

    return app.run(args)
