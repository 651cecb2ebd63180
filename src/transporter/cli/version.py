"""``transporter version`` and ``transporter completion bash|zsh|fish``."""

from __future__ import annotations

import attrs

from transporter.cli.commands import Parser, Subcommands, Values, add_command
from transporter.cli.completion import SHELLS
from transporter.cli.flags import Flag

VERSION_FLAGS = (
    Flag("--output", "text or json", str, "text", choices=("text", "json"), short="-o"),
)


@attrs.frozen(kw_only=True)
class VersionConfig:
    """``transporter version``: how to print it."""

    output: str = "text"


@attrs.frozen(kw_only=True)
class CompletionConfig:
    """``transporter completion``: for which shell."""

    shell: str


def add(commands: Subcommands) -> None:
    add_command(
        commands,
        "version",
        VERSION_FLAGS,
        version_settings,
        "print the version, commit, build date, Python and platform",
        examples=("transporter version", "transporter version -o json"),
    )
    completion = add_command(
        commands,
        "completion",
        (),
        completion_settings,
        "print a shell completion script (bash, zsh or fish)",
        "Print a script that completes transporter's commands, flags and their choices in"
        " bash, zsh or fish. Load it in the shell's start-up file, or install it where the"
        " shell looks for completions.",
        examples=(
            "echo '. <(transporter completion bash)' >> ~/.bashrc",
            "transporter completion bash > /etc/bash_completion.d/transporter",
            'transporter completion zsh > "${fpath[1]}/_transporter"',
            "transporter completion fish > ~/.config/fish/completions/transporter.fish",
        ),
    )
    completion.add_argument("shell", choices=SHELLS, help="the shell: bash, zsh or fish")


def version_settings(values: Values, parser: Parser) -> VersionConfig:
    return VersionConfig(output=values["output"])


def completion_settings(values: Values, parser: Parser) -> CompletionConfig:
    return CompletionConfig(shell=values["shell"])
