"""Following a rollout: ``GET /rollouts/{id}`` again and again (quickly while things move,
backing off while they do not) until it settles, shown as it goes.

On a terminal the clusters are a live table (rich's :class:`~rich.live.Live`), redrawn in
place; otherwise each change is one plain line (a log, a CI job). The caller bounds the
following with a cancel scope (``--timeout``, Ctrl-C); the rollout goes on either way.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Final, Protocol

import trio
from rich.console import Console, Group
from rich.text import Text

from transporter.produce.render import clock
from transporter.produce.rollout_render import STATE_STYLE, counts_line
from transporter.produce.views import ClusterView, RolloutView

if TYPE_CHECKING:  # imported when a live table is drawn: rich.table loads decimal (a lazy
    from rich.live import Live  # member of the single file), which a plain produce never needs

FIRST_POLL: Final = 0.5
LAST_POLL: Final = 5.0
"""Seconds between two looks: from the first, doubling while nothing changes, to the last."""


class Display(Protocol):
    def update(self, view: RolloutView) -> None: ...


async def follow_rollout(
    look: Callable[[], Awaitable[dict[str, Any]]], display: Display
) -> dict[str, Any]:
    """Look until the rollout settles (:attr:`RolloutView.settled`), showing each look on
    ``display``; the last answer. Unbounded: the caller's cancel scope bounds it."""
    pause = FIRST_POLL
    seen: RolloutView | None = None
    while True:
        data = await look()
        view = RolloutView.of(data)
        if view != seen:
            display.update(view)
            pause = FIRST_POLL
        else:
            pause = min(pause * 2, LAST_POLL)
        seen = view
        if view.settled:
            return data
        await trio.sleep(pause)


class Quiet:
    """Shows nothing (``-o json``: only the end is printed)."""

    def update(self, view: RolloutView) -> None:
        del view


class Lines:
    """One line per change: the rollout's state, and each cluster's state or phase."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.state = ""
        self.clusters: dict[str, tuple[str, str, str]] = {}

    def update(self, view: RolloutView) -> None:
        now = clock(time.time())
        if view.state != self.state:
            self.state = view.state
            line = Text(f"  {now}  rollout  ").append(view.state, STATE_STYLE.get(view.state, ""))
            self.console.print(line.append(f"  {view.message}" if view.message else ""))
        for cluster in view.clusters:
            now_is = (cluster.state, cluster.phase, cluster.message)
            if self.clusters.get(cluster.agent_id) == now_is:
                continue
            self.clusters[cluster.agent_id] = now_is
            line = Text(f"  {now}  {cluster.agent_id}  wave {cluster.wave + 1}  ")
            line.append(cluster.state, STATE_STYLE.get(cluster.state, ""))
            self.console.print(line.append(f"  {cluster.phase}  {cluster.message}".rstrip()))


_ORDER: Final = {"failed": 0, "drifted": 0, "expired": 0, "completed": 3, "cancelled": 3}
"""Which clusters a table too long for the screen keeps: failures, then those at work
(anything else), then those waiting (``pending``: 2), then those done."""


def shown_clusters(view: RolloutView, rows: int) -> tuple[list[ClusterView], int]:
    """At most ``rows`` clusters, in the rollout's order, the most telling kept when there
    are more; and how many were left out."""
    clusters = list(view.clusters)
    if len(clusters) <= rows:
        return clusters, 0
    rank = sorted(
        range(len(clusters)),
        key=lambda i: (
            _ORDER.get(clusters[i].state, 2 if clusters[i].state == "pending" else 1),
            i,
        ),
    )
    kept = sorted(rank[: max(rows, 1)])
    return [clusters[i] for i in kept], len(clusters) - len(kept)


def table(view: RolloutView, rows: int = 10_000) -> Group:
    """The live table: the clusters' wave, state, phase and message (those that fit in
    ``rows``), under a heading, above the counts."""
    from rich.table import Table  # late: see the imports above

    grid = Table(box=None, pad_edge=False, header_style="bold")
    for name in ("AGENT", "WAVE", "STATE", "PHASE", "MESSAGE"):
        grid.add_column(name, no_wrap=name != "MESSAGE", overflow="fold")
    clusters, left_out = shown_clusters(view, rows)
    for c in clusters:
        grid.add_row(
            Text(c.agent_id),
            str(c.wave + 1),
            Text(c.state, STATE_STYLE.get(c.state, "")),
            Text(c.phase or "-"),
            Text(c.message),
        )
    if left_out:
        grid.add_row(Text(f"… {left_out} more"), "", "", "", "")
    heading = Text(f"rollout {view.id}  ").append(view.state, STATE_STYLE.get(view.state, ""))
    if view.message:
        heading.append(f"  {view.message}")
    return Group(heading, grid, Text(counts_line(view)))


class LiveTable:
    """The clusters as a table redrawn in place (a terminal); left on screen at the end."""

    def __init__(self, console: Console) -> None:
        from rich.live import Live  # late: see the imports above

        self.live: Live = Live(console=console, auto_refresh=False, transient=False)

    def __enter__(self) -> LiveTable:
        self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.stop()

    def update(self, view: RolloutView) -> None:
        # The heading, the header, the counts and a "more" line around the rows that fit.
        rows = max(self.live.console.size.height - 5, 3)
        self.live.update(table(view, rows), refresh=True)


def display_for(console: Console, *, person: bool) -> AbstractContextManager[Display]:
    """A live table on a terminal, lines elsewhere, nothing for ``-o json|yaml|name``."""
    if not person:
        return _Plain(Quiet())
    if console.is_terminal:
        return LiveTable(console)
    return _Plain(Lines(console))


class _Plain(AbstractContextManager[Display]):
    def __init__(self, display: Display) -> None:
        self.display = display

    def __enter__(self) -> Display:
        return self.display

    def __exit__(self, *exc: object) -> None:
        return None
