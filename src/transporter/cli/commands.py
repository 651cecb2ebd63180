"""The commands' parsers: each leaf command registers its flags and the function that turns
their values into its settings, so that parsing a command line is one look-up."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, NoReturn

from transporter.cli.flags import Flag

EXIT_USAGE = 2

type Values = dict[str, Any]
ON_COMMAND_LINE = "__on_command_line__"
"""The key of a command's :data:`Values` whose value is the dests of its flags given on the
command line (not from their variables): where a command must tell the two apart (a flag on the
command line wins over a variable)."""
"""A command's flags by ``dest`` (resolved from the flag, its variable or its default), and its
positional arguments as argparse left them."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (no usage dump) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


type Subcommands = argparse._SubParsersAction[Parser]


def subcommands(parser: Parser, dest: str) -> Subcommands:
    """The required subcommands of ``parser``, shown as ``DEST`` in its usage."""
    actions = parser.add_subparsers(dest=dest, metavar=dest.upper(), parser_class=Parser)
    actions.required = True
    return actions


class HelpFormatter(argparse.HelpFormatter):
    """argparse's, but examples (an epilog that starts ``examples:``) keep their lines."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("examples:"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def _help(summary: str, description: str | None, examples: Sequence[str]) -> dict[str, Any]:
    """What ``--help`` shows above and below the flags: what the command does (its
    description, else its summary) and examples, laid out as written."""
    epilog = "examples:\n" + "".join(f"  {line}\n" for line in examples) if examples else None
    return {
        "help": summary,
        "description": description or summary[:1].upper() + summary[1:] + ".",
        "epilog": epilog,
        "formatter_class": HelpFormatter,
    }


def add_group(
    commands: Subcommands,
    name: str,
    summary: str,
    dest: str = "action",
    *,
    examples: Sequence[str] = (),
) -> Subcommands:
    """A command that only groups others (``token create|list|revoke``)."""
    return subcommands(commands.add_parser(name, **_help(summary, None, examples)), dest)


def add_command[S](
    commands: Subcommands,
    name: str,
    flags: Sequence[Flag],
    settings: Callable[[Values, Parser], S],
    summary: str,
    description: str | None = None,
    *,
    examples: Sequence[str] = (),
) -> Parser:
    """A leaf command, listed with ``summary``; its ``--help`` says what it does
    (``description``, else the summary) and shows ``examples``. Its positional arguments, if
    any, are the caller's to add to the parser returned."""
    parser = commands.add_parser(name, **_help(summary, description, examples))
    for flag in flags:
        flag.add_to(parser)
    parser.set_defaults(settings_of=partial(_settings_of, parser, flags, settings))
    return parser


def _settings_of[S](
    parser: Parser,
    flags: Sequence[Flag],
    settings: Callable[[Values, Parser], S],
    namespace: argparse.Namespace,
) -> S:
    given = vars(namespace)
    values = given | {flag.dest: flag.resolve(given[flag.dest], parser) for flag in flags}
    values[ON_COMMAND_LINE] = frozenset(flag.dest for flag in flags if given[flag.dest] is not None)
    return settings(values, parser)
