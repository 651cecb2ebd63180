"""What the producer shows a person: phases as they happen, and tables like kubectl's."""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from transporter.protocol.model import (
    AgentRecord,
    EventRecord,
    EventState,
    ResourceStatus,
    TimelineEntry,
)

STATE_STYLE = {
    EventState.QUEUED: "yellow",
    EventState.ASSIGNED: "cyan",
    EventState.IN_PROGRESS: "blue",
    EventState.COMPLETED: "green",
    EventState.FAILED: "bold red",
    EventState.EXPIRED: "red",
}
RESOURCE_STYLE = {
    ResourceStatus.FAILED: "bold red",
    ResourceStatus.CREATED: "green",
    ResourceStatus.UPDATED: "cyan",
    ResourceStatus.DELETED: "magenta",
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


def resources_table(record: EventRecord) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("KIND", "NAMESPACE", "NAME", "RESULT", "MESSAGE"):
        table.add_column(column, overflow="fold")
    for r in record.resources:
        table.add_row(
            r.kind,
            r.namespace or "",
            r.name,
            Text(r.status.value, style=RESOURCE_STYLE.get(r.status, "")),
            r.message,
        )
    return table


def show_event(console: Console, record: EventRecord) -> None:
    event = record.event
    console.print(f"event      {event.id}")
    console.print(f"agent      {event.target_agent}")
    console.print(
        f"action     {event.payload.action.value} ({len(event.payload.manifests)} manifest(s))"
    )
    console.print(Text("state      ").append(record.state.value, STATE_STYLE[record.state]))
    if record.message:
        console.print(f"message    {record.message}")
    console.print("timeline")
    for entry in record.timeline:
        console.print(timeline_line(entry))
    if record.resources:
        console.print(resources_table(record))


def events_table(records: Sequence[EventRecord], now: float) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("ID", "AGENT", "ACTION", "STATE", "PHASE", "AGE", "MESSAGE"):
        table.add_column(column, overflow="fold")
    for r in records:
        table.add_row(
            r.event.id,
            r.event.target_agent,
            r.event.payload.action.value,
            Text(r.state.value, STATE_STYLE[r.state]),
            r.phase.value if r.phase else "",
            age(r.event.created_at, now),
            r.message,
        )
    return table


def agents_table(records: Sequence[AgentRecord], now: float) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("ID", "STATUS", "CLUSTER", "VERSION", "LAST HEARTBEAT", "LABELS"):
        table.add_column(column, overflow="fold")
    for r in records:
        labels = ",".join(f"{k}={v}" for k, v in sorted(r.info.labels.items()))
        table.add_row(
            r.info.id,
            r.status.value,
            r.info.cluster_name,
            r.info.version,
            age(r.last_heartbeat, now) + " ago" if r.last_heartbeat else "-",
            labels,
        )
    return table
