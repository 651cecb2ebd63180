"""transporter/produce/render.py and output.py with hostile values from the API."""

from __future__ import annotations

import io

import yaml
from rich.console import Console

from transporter import output
from transporter.produce import render
from transporter.protocol.model import Event, EventRecord, EventState, K8sPayload, TimelineEntry


def test_an_event_message_with_markup_is_shown_as_it_is() -> None:
    event = Event(
        id="e1", target_agent="a1", payload=K8sPayload(manifests=("{}",)), ttl=60, created_at=1.0
    )
    message = "closing [/] and [bold]not bold[/bold]"
    record = EventRecord(
        event=event,
        seq=1,
        state=EventState.FAILED,
        message=message,
        timeline=(TimelineEntry(at=1.0, state=EventState.FAILED, message=message),),
    )
    buffer = io.StringIO()
    render.show_event(Console(file=buffer, highlight=False, soft_wrap=True), record)
    assert f"message    {message}\n" in buffer.getvalue()


def test_a_cell_holds_no_line_break_nor_terminal_control() -> None:
    cells = ("a\x0bb\x0cc", "d\x1b[2Je", "f\u2028g\x85h\u2029i", "j\x1ck\u202el")
    text = output.columns([cells], headers=None)
    assert text.count("\n") == 1 and len(text.splitlines()) == 1
    assert "\x1b" not in text and "\u202e" not in text
    assert text == "a b c  d\\u001b[2Je  f g h i  j k\\u202el\n"


def test_yaml_round_trips_every_awkward_string() -> None:
    values = ["yes", "~", ": x", "#c", "- x", "a\nb", "x\x85y", "\x85", "a\u2028b", "\ufeffz"]
    data = [{"labels": {value: value}, "message": value} for value in values]
    assert yaml.safe_load(output.structured(data, "yaml")) == data
