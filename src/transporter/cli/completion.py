"""``transporter completion bash|zsh|fish``: a completion script, generated from the parser tree.

Each command's subcommands (and the choices of its first positional argument, ``produce get
events|event|agents|agent``), its flags, and each flag's choices (``-o`` formats) come from
the same parsers that read the command line, so the script cannot drift from them. zsh loads
the bash script through its ``bashcompinit``.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import attrs

SHELLS = ("bash", "zsh", "fish")


@attrs.frozen
class Node:
    """One command of the tree: its path (``("produce", "get")``) and what may follow it."""

    path: tuple[str, ...]
    commands: tuple[tuple[str, str], ...]
    """Subcommands, or the choices of the first positional argument, with their help."""
    options: tuple[tuple[tuple[str, ...], str, tuple[str, ...] | None], ...]
    """Each flag's names, help, and choices (``()`` for a value of any kind, ``None`` for a
    switch that takes no value)."""


def walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[Node]:
    commands: list[tuple[str, str]] = []
    options = []
    children: list[tuple[str, argparse.ArgumentParser]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, child in action.choices.items():
                commands.append((name, helps.get(name, "")))
                children.append((name, child))
        elif action.option_strings:
            takes = None if action.nargs == 0 else tuple(str(c) for c in action.choices or ())
            options.append((tuple(action.option_strings), _short(action.help or ""), takes))
        elif action.choices and not commands:
            commands += [(str(choice), "") for choice in action.choices]
    yield Node(path, tuple(commands), tuple(options))
    for name, child in children:
        yield from walk(child, (*path, name))


def _short(text: str) -> str:
    """A flag's help up to its first stop, for a one-line description."""
    first = text.split(" [env ")[0].split(":")[0].split(" (")[0]
    return first if len(first) <= 60 else first[:57] + "..."


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    nodes = list(walk(parser))
    if shell == "fish":
        return _fish(nodes)
    bash = _bash(nodes)
    if shell == "zsh":
        return "#compdef transporter\nautoload -U +X bashcompinit && bashcompinit\n" + bash
    return bash


def _words(items: Iterator[str] | list[str] | tuple[str, ...]) -> str:
    return " ".join(items)


_BASH_MAIN = """_transporter() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="" path="" given="" word subs i
    (( COMP_CWORD > 0 )) && prev="${COMP_WORDS[COMP_CWORD-1]}"
    for (( i = 1; i < COMP_CWORD; i++ )); do
        word="${COMP_WORDS[i]}"
        [[ "$word" == -* ]] && continue
        subs=" $(_transporter_subcommands "$path") "
        if [[ "$subs" == *" $word "* ]]; then
            path="${path:+$path }$word" given=""
        elif subs=" $(_transporter_commands "$path") " && [[ "$subs" == *" $word "* ]]; then
            given=1  # the positional choice (produce get events): flags still complete
        fi
    done
    local choices
    choices="$(_transporter_choices "${path:+$path }$prev")"
    if [[ "$prev" == -* && -n "$choices" ]]; then
        COMPREPLY=($(compgen -W "$choices" -- "$cur"))
    elif [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$(_transporter_options "$path")" -- "$cur"))
    elif [[ -z "$given" ]] && subs="$(_transporter_commands "$path")" && [[ -n "$subs" ]]; then
        COMPREPLY=($(compgen -W "$subs" -- "$cur"))
    else
        local IFS=$'\\n'
        compopt -o filenames 2>/dev/null
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}
complete -F _transporter transporter
"""
"""The completion function itself: walks the words typed to the command they name, then
offers that command's subcommands, flags, a flag's choices or file names."""


def _bash(nodes: list[Node]) -> str:
    commands = "".join(
        f'        "{" ".join(n.path)}") echo "{_words([c for c, _ in n.commands])}" ;;\n'
        for n in nodes
        if n.commands
    )
    paths = {n.path for n in nodes}
    subcommands = "".join(
        f'        "{" ".join(n.path)}") echo "{_words(subs)}" ;;\n'
        for n in nodes
        if (subs := [c for c, _ in n.commands if (*n.path, c) in paths])
    )
    options = "".join(
        f'        "{" ".join(n.path)}") echo "{_words([f for o in n.options for f in o[0]])}" ;;\n'
        for n in nodes
    )
    choices = "".join(
        f'        "{" ".join((*n.path, flag))}") echo "{_words(takes)}" ;;\n'
        for n in nodes
        for flags, _, takes in n.options
        if takes
        for flag in flags
    )
    return f"""# transporter completion for bash: . <(transporter completion bash)
_transporter_commands() {{
    case "$1" in
{commands}    esac
}}
_transporter_subcommands() {{
    case "$1" in
{subcommands}    esac
}}
_transporter_options() {{
    case "$1" in
{options}    esac
}}
_transporter_choices() {{
    case "$1" in
{choices}    esac
}}
{_BASH_MAIN}"""


def _quoted(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _fish(nodes: list[Node]) -> str:
    lines = ["# transporter completion for fish: transporter completion fish | source"]
    lines.append("complete -c transporter -f")
    for node in nodes:
        if node.path:
            seen = "; and ".join(f"__fish_seen_subcommand_from {word}" for word in node.path)
        else:
            seen = "__fish_use_subcommand"
        names = " ".join(name for name, _ in node.commands)
        after = f"; and not __fish_seen_subcommand_from {names}" if node.path and names else ""
        for name, summary in node.commands:
            condition = _quoted(seen + after)
            lines.append(
                f"complete -c transporter -n {condition} -a {_quoted(name)} -d {_quoted(summary)}"
            )
        for flags, summary, takes in node.options:
            spec = " ".join(
                f"-l {flag[2:]}" if flag.startswith("--") else f"-s {flag[1:]}" for flag in flags
            )
            value = ""
            if takes:
                value = f" -x -a {_quoted(' '.join(takes))}"
            elif takes is not None:
                value = " -r -F"
            condition = _quoted(seen)
            lines.append(
                f"complete -c transporter -n {condition} {spec} -d {_quoted(summary)}{value}"
            )
    return "\n".join(lines) + "\n"
