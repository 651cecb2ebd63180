"""How commands print what they show: ``-o text|wide|name|json|yaml`` and ``--no-headers``.

- ``text`` and ``wide`` (more columns) are tables of plain columns: never wrapped, never
  folded, whatever the terminal's width or none (a pipe), so an id is never split and each
  line is one row for ``grep``, ``awk`` and ``cut``. ``--no-headers`` leaves the header out.
- ``name`` is one ``kind/id`` a line, as ``kubectl -o name``.
- ``json`` and ``yaml`` are the records, every time in RFC 3339 (UTC, ``Z``), as a person and a
  YAML or JSON reader expect; ``yaml`` is block YAML (PyYAML, which the file carries).

Imports nothing heavy: PyYAML only when ``yaml`` is asked for.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Iterable, Sequence
from typing import Final, Literal

type Output = Literal["text", "wide", "name", "json", "yaml"]

FORMATS: Final = ("text", "wide", "name", "json", "yaml")

TIME_KEYS: Final = frozenset(
    {
        "at",
        "created_at",
        "updated_at",
        "revoked_at",
        "connected_since",
        "last_heartbeat",
        "expires_at",
    }
)
"""Keys whose numbers are Unix times in the records we show."""


def rfc3339(at: float) -> str:
    """``at`` in RFC 3339, UTC: ``2026-12-06T07:45:01.123Z``."""
    moment = datetime.datetime.fromtimestamp(at, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def with_times(data: object) -> object:
    """``data`` (unstructured records) with each time in :data:`TIME_KEYS` as RFC 3339; a zero
    time (never set) as ``None``."""
    if isinstance(data, dict):
        return {key: _time_or(key, value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [with_times(item) for item in data]
    return data


def _time_or(key: object, value: object) -> object:
    if key in TIME_KEYS and isinstance(value, int | float) and not isinstance(value, bool):
        return rfc3339(value) if value else None
    return with_times(value)


def structured(data: object, output: Output) -> str:
    """``data`` as JSON or YAML, times in RFC 3339, ending with a newline."""
    shown = with_times(data)
    if output == "yaml":
        shown = json.loads(json.dumps(shown))  # plain data: enumerations as their strings
        import yaml  # here: only this format needs it

        class Dumper(yaml.SafeDumper):
            """PyYAML writes a NEL (U+0085) raw in a plain or single-quoted scalar, where its
            own reader folds it to a space: such strings go double-quoted, NEL escaped."""

        def string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
            style = '"' if _YAML_BREAKS.search(value) else None
            return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

        Dumper.add_representer(str, string)
        text: str = yaml.dump(
            shown, Dumper=Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True
        )
        return text
    return json.dumps(shown, indent=2) + "\n"


def columns(rows: Iterable[Sequence[str]], *, headers: Sequence[str] | None) -> str:
    """Rows as plain columns two spaces apart, the last one unpadded; ``headers`` first unless
    ``None``. A cell's line breaks and tabs are shown as spaces: one row, one line."""
    table = [list(headers)] if headers is not None else []
    table += [[_one_line(cell) for cell in row] for row in rows]
    if not table:
        return ""
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = (
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in table
    )
    return "".join(line + "\n" for line in lines)


_YAML_BREAKS: Final = re.compile("[\x85\u2028\u2029]")
_BREAKS: Final = re.compile("[\t-\r\x1c-\x1e\x85\u2028\u2029]")
"""What ``str.splitlines`` or a terminal takes as a line break or a tab: a space in a cell."""
_UNSEEN: Final = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
"""Other controls (an ANSI escape) and bidirectional controls: shown as escapes in a cell."""


def _one_line(cell: str) -> str:
    if not cell:
        return ""
    cell = _BREAKS.sub(" ", cell)
    return _UNSEEN.sub(lambda match: f"\\u{ord(match.group()):04x}", cell)


def names(kind: str, ids: Iterable[str]) -> str:
    """``-o name``: ``kind/id``, one a line."""
    return "".join(f"{kind}/{item}\n" for item in ids)
