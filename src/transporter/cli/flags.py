"""One flag of a command: its help, how its text becomes a value, and its environment variable.

Every flag can also come from an environment variable ``TRANSPORTER_<FLAG>`` (``--agent-id`` is
``TRANSPORTER_AGENT_ID``); a flag on the command line wins over the variable. Repeatable flags take
a comma-separated list from their variable. A value that does not parse is a usage error naming
where it came from: the flag, the variable or the default.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from transporter.config.values import ConfigError, parse_bool


def dest_of(name: str) -> str:
    """``--agent-id`` is ``agent_id``: the key of its value."""
    return name.removeprefix("--").replace("-", "_")


def env_of(name: str) -> str:
    """``--agent-id`` is ``TRANSPORTER_AGENT_ID``."""
    return "TRANSPORTER_" + dest_of(name).upper()


@attrs.frozen
class Flag:
    """One option: its flag, how its text becomes a value, and its environment variable."""

    name: str
    help: str
    parse: Callable[[str], Any] = str
    default: Any = None
    required: bool = False
    repeat: bool = False
    switch: bool = False
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    short: str | None = None

    @property
    def dest(self) -> str:
        return dest_of(self.name)

    @property
    def env(self) -> str:
        return env_of(self.name)

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        where = f" [env {self.env}]"
        if self.default is not None and not self.switch:
            where += f" (default: {self.default})"
        names = [self.short, self.name] if self.short else [self.name]
        if self.switch:
            parser.add_argument(*names, action="store_const", const=True, help=self.help + where)
        else:
            parser.add_argument(
                *names,
                action="append" if self.repeat else "store",
                choices=self.choices,
                metavar=self.metavar,
                help=self.help + where,
            )

    def resolve(self, given: Any, parser: argparse.ArgumentParser) -> Any:
        """The value from the command line, else the environment, else the default; parsed."""
        source = self.name
        if given is None and self.env in os.environ:
            text = os.environ[self.env]
            source = self.env
            if self.switch:
                given = checked(parse_bool, text, source, parser)
            elif self.repeat:
                given = [item for item in text.split(",") if item.strip()]
            else:
                given = text
            if self.choices and not self.switch and given not in self.choices:
                parser.error(f"{source}: {given!r} is not one of {', '.join(self.choices)}")
        if given is None:
            if self.required:
                parser.error(f"{self.name} is required (or set {self.env})")
            if self.switch:
                return bool(self.default)
            if self.default is None:
                return [] if self.repeat else None
            given, source = self.default, f"default of {self.name}"
        if self.switch:
            return bool(given)
        if self.repeat:
            return [checked(self.parse, item, source, parser) for item in given]
        return checked(self.parse, given, source, parser)


def checked(
    parse: Callable[[str], Any], text: str, source: str, parser: argparse.ArgumentParser
) -> Any:
    """``parse(text)``, a :class:`ConfigError` from it a usage error that names ``source``."""
    try:
        return parse(text)
    except ConfigError as exc:
        parser.error(f"{source}: {exc}")


def path(text: str) -> Path:
    if not text:
        raise ConfigError("an empty path")
    return Path(text).expanduser()


def non_empty(text: str) -> str:
    if not text.strip():
        raise ConfigError("must not be empty")
    return text


def checked_by(check: Callable[[str], str]) -> Callable[[str], str]:
    """A parser from one of the protocol's checks (which raise ValueError)."""

    def parse(text: str) -> str:
        try:
            return check(text)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    return parse
