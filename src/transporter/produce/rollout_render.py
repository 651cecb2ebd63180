"""What the producer shows a person of rollouts and plans: tables of rollouts and of a rollout's
clusters, its timeline, a plan's objects with the fields each would change, and counts."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.text import Text

from transporter import output
from transporter.produce.render import Rows, age, clock
from transporter.produce.views import ClusterView, EntryView, RolloutView
from transporter.protocol.model import FieldChange, ResourceResult

STATE_STYLE = {
    "pending": "dim",
    "queued": "yellow",
    "assigned": "cyan",
    "in_progress": "blue",
    "running": "blue",
    "paused": "yellow",
    "awaiting_approval": "bold yellow",
    "standing": "cyan",
    "completed": "green",
    "failed": "bold red",
    "expired": "red",
    "cancelled": "magenta",
    "drifted": "bold red",
}

COUNT_ORDER = (
    "completed",
    "in_progress",
    "assigned",
    "queued",
    "pending",
    "failed",
    "drifted",
    "expired",
    "cancelled",
)


def counts_line(view: RolloutView) -> str:
    """``2 completed, 1 failed, 3 pending (6 clusters)``: the states in a fixed order, those
    the order does not know after them."""
    known = [state for state in COUNT_ORDER if view.counts.get(state)]
    other = sorted(state for state in view.counts if state not in COUNT_ORDER)
    parts = [f"{view.counts[state]} {state}" for state in (*known, *other) if view.counts[state]]
    total = f"{view.total} cluster{'' if view.total == 1 else 's'}"
    return f"{', '.join(parts) or 'no clusters'} ({total})"


def progress(view: RolloutView) -> str:
    """``4/6``: clusters finished of all."""
    done = sum(
        n
        for state, n in view.counts.items()
        if state in ("completed", "failed", "expired", "cancelled", "drifted")
    )
    return f"{done}/{view.total}"


def rollouts_rows(views: Sequence[RolloutView], now: float, *, wide: bool = False) -> Rows:
    headers: tuple[str, ...] = ("ID", "KIND", "STATE", "DONE", "FAILED", "WAVE", "AGE")
    if wide:
        headers += ("TARGET", "CREATED BY", "STANDING")
    rows = []
    for v in views:
        failed = sum(v.counts.get(state, 0) for state in ("failed", "expired", "drifted"))
        wave = f"{v.wave + 1}/{v.waves}" if v.waves else "-"
        row: tuple[str, ...] = (
            v.id,
            v.kind,
            v.state,
            progress(v),
            str(failed),
            wave,
            age(v.created_at, now),
        )
        if wide:
            row += (v.target or "-", v.created_by or "-", "yes" if v.standing else "no")
        rows.append((*row, v.message))
    return (*headers, "MESSAGE"), rows


def clusters_rows(clusters: Sequence[ClusterView], *, wide: bool = False) -> Rows:
    headers: tuple[str, ...] = ("AGENT", "WAVE", "STATE", "PHASE")
    if wide:
        headers += ("EVENT", "UPDATED")
    rows = []
    for c in clusters:
        row: tuple[str, ...] = (c.agent_id, str(c.wave + 1), c.state, c.phase or "-")
        if wide:
            row += (c.event_id or "-", clock(c.updated_at))
        rows.append((*row, c.message))
    return (*headers, "MESSAGE"), rows


def timeline_line(entry: EntryView) -> Text:
    line = Text(f"  {clock(entry.at)}  ")
    line.append(f"{entry.what:<18}", style=STATE_STYLE.get(entry.what, ""))
    if entry.wave is not None:
        line.append(f"wave {entry.wave + 1}  ")
    line.append(entry.message)
    return line


def show_rollout(console: Console, view: RolloutView, *, wide: bool = False) -> None:
    """A rollout as ``get rollout`` shows it: what, where it stands, each cluster, timeline."""
    # Text, not markup: what the API sent is shown as it is, never parsed.
    console.print(Text(f"{view.kind:<10} {view.id}"))
    console.print(Text("state      ").append(view.state, STATE_STYLE.get(view.state, "")))
    if view.message:
        console.print(Text(f"message    {view.message}"))
    console.print(Text(f"target     {view.target or '-'}{' (standing)' if view.standing else ''}"))
    if view.waves:
        console.print(Text(f"wave       {view.wave + 1} of {view.waves}"))
    if view.plan_id:
        console.print(Text(f"plan       {view.plan_id}"))
    console.print(Text(f"clusters   {counts_line(view)}"))
    if view.clusters:
        headers, rows = clusters_rows(view.clusters, wide=wide)
        console.out(output.columns(rows, headers=headers), end="", highlight=False)
    if view.timeline:
        console.print("timeline")
        for entry in view.timeline:
            console.print(timeline_line(entry))


def resource_name(result: ResourceResult) -> str:
    where = f"{result.namespace}/" if result.namespace else ""
    return f"{result.kind}/{where}{result.name}"


def plan_text(view: RolloutView, *, headers: bool = True) -> str:
    """Each cluster's objects and what applying would do to them, each change under its
    object (``  spec.replicas: 2 -> 3``); a cluster without results says why."""
    names = ("CLUSTER", "OBJECT", "RESULT", "MESSAGE")
    rows: list[tuple[str, ...]] = []
    changes: dict[int, list[str]] = {}
    for cluster in view.clusters:
        if not cluster.resources:
            rows.append((cluster.agent_id, "-", cluster.state, cluster.message))
        for result in cluster.resources:
            rows.append(
                (cluster.agent_id, resource_name(result), result.status.value, result.message)
            )
            changes[len(rows) - 1] = [diff_line(change) for change in result.diff]
    table = output.columns(rows, headers=names if headers else None).splitlines(keepends=True)
    skip = 1 if headers and rows else 0
    lines = table[:skip]
    for index, line in enumerate(table[skip:]):
        lines.append(line)
        lines += [f"    {change}\n" for change in changes.get(index, ())]
    return "".join(lines)


def diff_line(change: FieldChange) -> str:
    """``spec.replicas: 2 -> 3``, ``data.b: + "x"``, ``data.c: - "y"``: one line, plain."""
    if change.op == "add":
        shown = f"{change.path}: + {change.new}"
    elif change.op == "remove":
        shown = f"{change.path}: - {change.old}"
    else:
        shown = f"{change.path}: {change.old} -> {change.new}"
    return output.columns([(shown,)], headers=None).rstrip("\n")
