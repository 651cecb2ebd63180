"""``transporter completion bash|zsh|fish``: scripts generated from the parser tree, loaded in a
real bash and asked for completions as bash asks (COMP_WORDS, COMP_CWORD)."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.bed.roles import PYTHON_TRANSPORTER


def script(shell: str) -> str:
    done = subprocess.run(
        [*PYTHON_TRANSPORTER, "completion", shell],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def complete(words: list[str]) -> list[str]:
    """What bash offers for the last of ``words`` with the bash script loaded."""
    program = script("bash") + (
        f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
        '_transporter; printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    done = subprocess.run(
        ["bash", "-c", program], capture_output=True, text=True, timeout=30, check=True
    )
    return [line for line in done.stdout.splitlines() if line]


def test_the_bash_script_parses() -> None:
    done = subprocess.run(
        ["bash", "-n"], input=script("bash"), capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("words", "offered"),
    [
        (
            ["transporter", ""],
            ["cp", "agent", "produce", "audit", "token", "bundle", "version", "completion"],
        ),
        (["transporter", "pro"], ["produce"]),
        (
            ["transporter", "produce", "get", ""],
            [
                *("events", "event", "agents", "agent", "rollouts", "rollout", "plans", "plan"),
                "dead-letters",
            ],
        ),
        (["transporter", "token", "list", "-o", ""], ["text", "wide", "name", "json", "yaml"]),
        (["transporter", "cp", "--log-f"], ["--log-format"]),
        (["transporter", "--debug", "agent", "--log-format", "j"], ["json"]),
        (["transporter", "bundle", "cr"], ["create"]),
        (["transporter", "completion", ""], ["bash", "zsh", "fish"]),
        # after the positional choice, its flags and their choices still complete
        (
            ["transporter", "produce", "get", "events", "-o", ""],
            ["text", "wide", "name", "json", "yaml"],
        ),
        (["transporter", "produce", "get", "agents", "--no-h"], ["--no-headers"]),
    ],
)
def test_bash_completes_commands_flags_and_choices(words: list[str], offered: list[str]) -> None:
    assert complete(words) == offered


def test_the_zsh_and_fish_scripts() -> None:
    zsh = script("zsh")
    assert zsh.startswith("#compdef transporter\n") and "bashcompinit" in zsh
    fish = script("fish")
    lines = fish.splitlines()
    assert all(line.startswith(("#", "complete -c transporter ")) for line in lines)
    assert "-a 'produce'" in fish and "-l log-format" in fish and "-x -a 'text json'" in fish
    for shell in ("zsh", "fish"):
        if shutil.which(shell):
            done = subprocess.run(
                [shell, "-n"], input=script(shell), capture_output=True, text=True, check=False
            )
            assert done.returncode == 0, done.stderr


def test_bash_offers_a_file_name_with_a_space_as_one_word(tmp_path: Path) -> None:
    (tmp_path / "site 1.tar").touch()
    program = script("bash") + (
        "COMP_WORDS=(transporter agent --bundle site); COMP_CWORD=3\n"
        '_transporter; printf "<%s>\\n" "${COMPREPLY[@]}"\n'
    )
    done = subprocess.run(
        ["bash", "-c", program],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        cwd=tmp_path,
    )
    assert done.stdout.splitlines() == ["<site 1.tar>"]
