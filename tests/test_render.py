"""transporter/produce/render.py and output.py with hostile values from the API."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import trio
import yaml
from rich.console import Console

from transporter import output
from transporter.config.produce import ProduceConfig
from transporter.produce import main, render
from transporter.produce.client import Submitted
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


def test_an_event_id_with_markup_from_the_api_is_shown_as_it_is(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A control plane that answers with an id holding '[/]' cannot crash the producer."""
    event_id = "e[/]1 [bold]x"

    class FakeClient:
        def __init__(self, *args: object, **kwargs: object) -> None:
            pass

        async def submit(self, body: object) -> Submitted:
            return Submitted(event_id, True, False)

    monkeypatch.setattr(main, "Client", FakeClient)
    manifest = tmp_path / "cm.yaml"
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    outcome: list[int] = []
    trio.run(main.submit, ProduceConfig(agent="a1", manifests=(manifest,)), outcome)
    assert outcome == [main.EXIT_OK]
    assert f"event {event_id} accepted (agent a1 has never registered;" in capsys.readouterr().out
