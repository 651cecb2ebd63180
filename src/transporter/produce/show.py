"""How every producer command prints what it got: ``-o json|yaml`` (the data), ``-o name``
(``kind/id``), else a table; and the exit codes all of them share."""

from __future__ import annotations

import sys
from typing import Final

from transporter import output
from transporter.config.produce import Reach
from transporter.produce.render import Rows

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2


def write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def show(
    settings: Reach, kind: str, data: object, ids: list[str], table: Rows | None = None
) -> None:
    """``data`` (unstructured) in a structured format or as names; else ``table``."""
    if settings.output in ("json", "yaml"):
        write(output.structured(data, settings.output))
    elif settings.output == "name":
        write(output.names(kind, ids))
    elif table is not None:
        headers, rows = table
        write(output.columns(rows, headers=None if settings.no_headers else headers))


def person(settings: Reach) -> bool:
    """Whether the output is for a person (progress shown as it comes)."""
    return settings.output in ("text", "wide")


def complain(message: str) -> None:
    """One line on stderr, the command's name first."""
    print(f"transporter produce: {message}", file=sys.stderr)
