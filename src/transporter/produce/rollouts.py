"""``transporter produce``'s rollouts: submit one (``k8s --agents|--selector``), follow it
(``--wait``, ``get rollout --watch``), list and show them, and approve, cancel or close one.

Exit codes: 0 every cluster completed (or the query answered); 1 some cluster did not
(failed, expired, cancelled, drifted), the rollout ended failed or cancelled, it had not
settled when following stopped (``--timeout``, Ctrl-C), or the control plane could not be
reached; 2 the request was wrong.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import trio
from rich.console import Console
from rich.text import Text

from transporter import output
from transporter.config.produce import (
    ProduceConfig,
    QueryConfig,
    Reach,
    RolloutOpConfig,
    RolloutOptions,
    Targets,
)
from transporter.produce import rollout_render, show
from transporter.produce.client import ApiError, Client
from transporter.produce.live import display_for, follow_rollout
from transporter.produce.views import RolloutView, plain
from transporter.protocol.rollout import Strategy, is_rollout_id

MAX_NAMED = 10
"""Agents named in the line that says a rollout was accepted; the rest are counted."""


def strategy_body(strategy: Strategy) -> dict[str, Any]:
    """The strategy as ``POST /events`` takes it: only what was given."""
    body: dict[str, Any] = {}
    if strategy.max_parallel_percent:
        body["max_parallel"] = f"{strategy.max_parallel_percent}%"
    elif strategy.max_parallel:
        body["max_parallel"] = strategy.max_parallel
    if strategy.max_failures:
        body["max_failures"] = strategy.max_failures
    if strategy.waves:
        body["waves"] = [
            {"selector": w.selector, "pause": w.pause, "approval": w.approval}
            for w in strategy.waves
        ]
    return body


def targets_body(targets: Targets) -> dict[str, Any]:
    if targets.selector is not None:
        return {"selector": targets.selector}
    return {"target_agents": list(targets.agents)}


def options_body(options: RolloutOptions) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if options.rollout_id is not None:
        body["id"] = options.rollout_id
    strategy = strategy_body(options.strategy)
    if strategy:
        body["strategy"] = strategy
    for name in ("standing", "allow_empty"):
        if getattr(options, name):
            body[name] = True
    return body


def accepted_line(answer: dict[str, Any], noun: str = "rollout") -> str:
    """``rollout web-1 accepted: 3 agents in 2 waves (a, b, c)`` or ``… exists (running)``."""
    rollout_id = plain(answer.get("rollout_id") or answer.get("plan_id") or "")
    if answer.get("status") == "exists":
        return f"{noun} {rollout_id} exists (state {plain(answer.get('state', '?'))})"
    if answer.get("status") == "queued":  # produce --mode queue: no control plane took it yet
        return f"{noun} {rollout_id} queued"
    agents = [plain(a) for a in answer.get("agents") or ()]
    waves = answer.get("waves")
    in_waves = f" in {len(waves)} waves" if isinstance(waves, list) and len(waves) > 1 else ""
    named = ", ".join(agents[:MAX_NAMED]) + (", …" if len(agents) > MAX_NAMED else "")
    return f"{noun} {rollout_id} accepted: {len(agents)} agent(s){in_waves} ({named or 'none'})"


async def submit_rollout(
    settings: ProduceConfig, payload: dict[str, Any], client: Client, shutdown: trio.Event
) -> int:
    assert settings.targets is not None
    body = {"payload": payload, **targets_body(settings.targets), **options_body(settings.rollout)}
    if settings.ttl is not None:
        body["ttl"] = settings.ttl
    answer = await client.submit_rollout(body)
    return await announced(settings, client, answer, wait=settings.wait, shutdown=shutdown)


async def announced(
    settings: Reach, client: Client, answer: dict[str, Any], *, wait: bool, shutdown: trio.Event
) -> int:
    """Say that a rollout was accepted; with ``wait``, follow it to its end."""
    console = Console(highlight=False, soft_wrap=True)
    rollout_id = str(answer.get("rollout_id", ""))  # a rollout id: letters, digits, '.', '-'
    if show.person(settings):
        console.print(Text(accepted_line(answer)))
    if not wait:
        if not show.person(settings):
            show.show(settings, "rollout", answer, [rollout_id])
        return show.EXIT_OK
    return await follow(settings, client, rollout_id, console, shutdown)


async def follow(
    settings: Reach, client: Client, rollout_id: str, console: Console, shutdown: trio.Event
) -> int:
    """Follow the rollout until it settles, ``--timeout`` passes or Ctrl-C; show how it
    ended (or where it stands) and its exit code."""
    data, why = await watch(settings, client, rollout_id, console, shutdown)
    return ended(settings, console, data, why)


type Why = Literal["settled", "timeout", "interrupted"]


async def watch(
    settings: Reach, client: Client, rollout_id: str, console: Console, shutdown: trio.Event
) -> tuple[dict[str, Any], Why]:
    """Follow the rollout (shown as it goes, to a person) until it settles, ``--timeout``
    passes or Ctrl-C (``shutdown``): the last answer and why following stopped."""
    last: list[dict[str, Any]] = [{"id": rollout_id, "state": "unknown"}]

    async def look() -> dict[str, Any]:
        last[0] = await client.rollout(rollout_id)
        return last[0]

    why: Why = "timeout"
    with display_for(console, person=show.person(settings)) as display:
        async with trio.open_nursery() as nursery:

            async def interrupt() -> None:
                nonlocal why
                await shutdown.wait()
                why = "interrupted"
                nursery.cancel_scope.cancel()

            nursery.start_soon(interrupt)
            with trio.move_on_after(settings.timeout):
                await follow_rollout(look, display)
                why = "settled"
            nursery.cancel_scope.cancel()
    return last[0], why


def ended(settings: Reach, console: Console, data: dict[str, Any], why: str) -> int:
    view = RolloutView.of(data)
    again = f"transporter produce get rollout {view.id} --watch"
    if show.person(settings):
        line = Text(f"rollout {view.id} ").append(
            view.state, rollout_render.STATE_STYLE.get(view.state, "")
        )
        console.print(line.append(f": {rollout_render.counts_line(view)}"))
        if view.state == "awaiting_approval":
            console.print(Text(f"approve the next wave: transporter produce approve {view.id}"))
        if why == "timeout":
            console.print(Text(f"not finished after {settings.timeout:g} s; follow it: {again}"))
        elif why == "interrupted":
            console.print(Text(f"stopped following (the rollout goes on); follow it: {again}"))
    else:
        shown = data if why == "settled" else {**data, "timed_out": why == "timeout"}
        show.show(settings, "rollout", shown, [view.id])
    return show.EXIT_OK if why == "settled" and view.succeeded else show.EXIT_FAILED


async def query(settings: QueryConfig, client: Client, shutdown: trio.Event) -> int:
    """``get rollouts|plans`` (a table) or ``get rollout|plan ID`` (with ``--watch``)."""
    console = Console(highlight=False, soft_wrap=True)
    wide = settings.output == "wide"
    if settings.what in ("rollouts", "plans"):
        kind = "plan" if settings.what == "plans" else settings.kind
        items = await client.rollouts(state=settings.state, kind=kind, limit=settings.limit)
        views = [RolloutView.of(item) for item in items]
        table = rollout_render.rollouts_rows(views, time.time(), wide=wide)
        if settings.output == "name":  # rollouts may list plans: each its own kind
            show.write("".join(output.names(kind_of(v), [v.id]) for v in views))
        else:
            show.show(settings, settings.what[:-1], items, [v.id for v in views], table)
        return show.EXIT_OK
    assert settings.name is not None
    if settings.what == "plan":
        data = await client.plan(settings.name)
    else:
        data = await client.rollout(settings.name)
    view = RolloutView.of(data)
    if settings.watch and not view.settled:
        if settings.what == "rollout":
            return await follow(settings, client, settings.name, console, shutdown)
        last, why = await watch(settings, client, settings.name, console, shutdown)
        if why != "settled":
            return ended(settings, console, last, why)
        data = await client.plan(settings.name)
        view = RolloutView.of(data)
    if show.person(settings):
        rollout_render.show_rollout(console, view, wide=wide)
        if settings.what == "plan":
            show.write(rollout_render.plan_text(view, headers=not settings.no_headers))
    else:
        show.show(settings, kind_of(view), data, [view.id])
    return show.EXIT_OK


def kind_of(view: RolloutView) -> str:
    """What ``-o name`` calls it: ``plan`` or ``rollout`` (a plan's apply is a rollout)."""
    return "plan" if view.kind == "plan" else "rollout"


async def operate(settings: RolloutOpConfig, client: Client) -> int:
    """``approve``, ``close`` or ``cancel``: a rollout's, or (``cancel``) an event's."""
    prefix, slash, rest = settings.name.partition("/")
    kind, name = (prefix, rest) if slash and prefix in ("rollout", "event") else ("", settings.name)
    if settings.op == "approve":
        body = {} if settings.wave is None else {"wave": settings.wave - 1}  # the API's index
        answer = await client.rollout_op(name, "approve", body)
        approved = answer.get("approved")
        number = approved + 1 if isinstance(approved, int) else settings.wave
        said = f"rollout {name}: wave {number} approved"
    elif settings.op == "close":
        answer = await client.rollout_op(name, "close")
        said = f"rollout {name} closed: agents that register from now on do not get it"
    else:
        answer, said, kind = await cancel(client, kind, name)
    if show.person(settings):
        Console(highlight=False, soft_wrap=True).print(Text(plain(said)))
    else:
        show.show(settings, kind or "rollout", answer, [name])
    return show.EXIT_OK


async def cancel(client: Client, kind: str, name: str) -> tuple[dict[str, Any], str, str]:
    """A rollout's cancel, else (a bare id no rollout has, or ``event/ID``) an event's. A
    bare id that cannot be a rollout's (a rollout's child event, ``<rollout>_<agent>``) is an
    event's."""
    if not kind and not is_rollout_id(name):
        kind = "event"
    if kind in ("", "rollout"):
        try:
            answer = await client.rollout_op(name, "cancel")
        except ApiError as exc:
            if kind or exc.status != 404:
                raise
        else:
            said = (
                f"rollout {name} {answer.get('state', 'cancelled')}: {answer.get('cancelled', 0)}"
                f" cluster(s) cancelled, {answer.get('running', 0)} running will finish"
            )
            return answer, said, "rollout"
    try:
        answer = await client.cancel_event(name)
    except ApiError as exc:
        if kind or exc.status != 404:
            raise
        raise ApiError(404, "not_found", f"no rollout and no event has the id {name!r}") from None
    return answer, f"event {name} cancelled: it was never sent to its agent", "event"
