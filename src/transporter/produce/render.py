"""What the producer shows a person: phases as they happen, and tables like kubectl's."""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from rich.console import Console
from rich.text import Text

from transporter import output
from transporter.protocol.model import (
    AgentRecord,
    EventRecord,
    EventState,
    TimelineEntry,
)

STATE_STYLE = {
    EventState.QUEUED: "yellow",
    EventState.ASSIGNED: "cyan",
    EventState.IN_PROGRESS: "blue",
    EventState.COMPLETED: "green",
    EventState.FAILED: "bold red",
    EventState.EXPIRED: "red",
    EventState.CANCELLED: "magenta",
}


def clock(at: float | None) -> str:
    if at is None:
        return "-"
    return datetime.datetime.fromtimestamp(at).strftime("%H:%M:%S.%f")[:-3]


def age(at: float | None, now: float) -> str:
    if at is None:
        return "-"
    seconds = max(0, int(now - at))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def timeline_line(entry: TimelineEntry) -> Text:
    line = Text(f"  {clock(entry.at)}  ")
    line.append(f"{entry.state.value:<12}", style=STATE_STYLE[entry.state])
    line.append(f"{(entry.phase.value if entry.phase else ''):<11}")
    line.append(entry.message)
    return line


type Rows = tuple[tuple[str, ...], list[tuple[str, ...]]]
"""A table's headers and its rows, for :func:`transporter.output.columns`."""


def resources_rows(record: EventRecord) -> Rows:
    headers: tuple[str, ...] = ("KIND", "NAMESPACE", "NAME", "RESULT", "MESSAGE")
    rows: list[tuple[str, ...]] = [
        (r.kind, r.namespace or "", r.name, r.status.value, r.message) for r in record.resources
    ]
    return headers, rows


def resources_table(record: EventRecord, *, headers: bool = True) -> str:
    """Each resource's result, as plain columns (never wrapped)."""
    names, rows = resources_rows(record)
    return output.columns(rows, headers=names if headers else None)


def show_event(console: Console, record: EventRecord) -> None:
    event = record.event
    # Text, not markup: what the API sent ("[/]", "[bold]") is shown as it is, never parsed.
    console.print(Text(f"event      {event.id}"))
    console.print(Text(f"agent      {event.target_agent}"))
    console.print(
        f"action     {event.payload.action.value} ({len(event.payload.manifests)} manifest(s))"
    )
    console.print(Text("state      ").append(record.state.value, STATE_STYLE[record.state]))
    if record.message:
        console.print(Text(f"message    {record.message}"))
    console.print("timeline")
    for entry in record.timeline:
        console.print(timeline_line(entry))
    if record.resources:
        console.out(resources_table(record), end="", highlight=False)


def events_rows(records: Sequence[EventRecord], now: float, *, wide: bool = False) -> Rows:
    headers: tuple[str, ...] = ("ID", "AGENT", "ACTION", "STATE", "PHASE", "AGE")
    if wide:
        headers += ("CREATED", "CREATED BY", "RESOURCES")
    rows = []
    for r in records:
        row: tuple[str, ...] = (
            r.event.id,
            r.event.target_agent,
            r.event.payload.action.value,
            r.state.value,
            r.phase.value if r.phase else "",
            age(r.event.created_at, now),
        )
        if wide:
            created = output.rfc3339(r.event.created_at)
            row += (created, r.event.created_by or "-", str(len(r.resources)))
        rows.append((*row, r.message))
    return (*headers, "MESSAGE"), rows


def agents_rows(records: Sequence[AgentRecord], now: float, *, wide: bool = False) -> Rows:
    headers: tuple[str, ...] = ("ID", "STATUS", "CLUSTER", "VERSION", "LAST HEARTBEAT")
    if wide:
        headers += ("CONNECTED SINCE", "CAPABILITIES")
    rows = []
    for r in records:
        labels = ",".join(f"{k}={v}" for k, v in sorted(r.info.labels.items()))
        row: tuple[str, ...] = (
            r.info.id,
            r.status.value,
            r.info.cluster_name,
            r.info.version,
            age(r.last_heartbeat, now) + " ago" if r.last_heartbeat else "-",
        )
        if wide:
            since = output.rfc3339(r.connected_since) if r.connected_since else "-"
            row += (since, ",".join(r.info.capabilities) or "-")
        rows.append((*row, labels))
    return (*headers, "LABELS"), rows
