"""transporter/output.py: plain columns that never wrap, names, and times in RFC 3339."""

from __future__ import annotations

import json

import yaml

from transporter import output


def test_columns_never_wrap_nor_split_and_keep_one_row_a_line() -> None:
    event_id = "6f1c2d3e-0000-4000-8000-0123456789ab"
    long = "x" * 500
    text = output.columns([(event_id, long), ("b", "two\nlines\tand a tab")], headers=("ID", "MSG"))
    lines = text.splitlines()
    assert lines == [
        "ID" + " " * (len(event_id) - 2) + "  MSG",
        f"{event_id}  {long}",
        "b" + " " * (len(event_id) - 1) + "  two lines and a tab",
    ]
    assert output.columns([("a", "b")], headers=None) == "a  b\n"
    assert output.columns([], headers=None) == ""


def test_names_and_structured_times() -> None:
    assert output.names("event", ["a", "b"]) == "event/a\nevent/b\n"
    data = [{"id": "a", "created_at": 1765007101.5, "revoked_at": None, "seq": 3, "at": 0.0}]
    shown = json.loads(output.structured(data, "json"))
    assert shown == [
        {
            "id": "a",
            "created_at": "2025-12-06T07:45:01.500Z",
            "revoked_at": None,
            "seq": 3,
            "at": None,
        }
    ]
    block = output.structured(data, "yaml")
    assert block.startswith("- id: a\n") and yaml.safe_load(block) == shown
