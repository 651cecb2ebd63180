"""``transporter produce``: submit events, follow them, and look at events and agents.

Exit codes: 0 the event completed (or the query answered); 1 it failed, expired, or was not
finished within ``--timeout``, or the control plane could not be reached; 2 the request itself
was wrong (bad flags, unreadable manifests, or the control plane refused it as invalid).
"""

from __future__ import annotations

import sys
import time
from functools import partial
from typing import Any

import attrs
import trio
from rich.console import Console
from rich.markup import escape

from transporter import runtime
from transporter.config.produce import (
    ApplyPlanConfig,
    PlanConfig,
    ProduceConfig,
    QueryConfig,
    RolloutOpConfig,
)
from transporter.produce import plans, queue, render, rollouts, show
from transporter.produce.client import ApiError, Client, Unreachable
from transporter.produce.files import ManifestFileError, read_manifests
from transporter.produce.queue import QueueClient, QueueError
from transporter.protocol import codec
from transporter.protocol.model import EventRecord, EventState

EXIT_OK, EXIT_FAILED, EXIT_USAGE = show.EXIT_OK, show.EXIT_FAILED, show.EXIT_USAGE
LONG_POLL = 20.0


OUTCOME_ONLY = 1_000_000
"""A ``since`` no timeline reaches: the control plane answers when the event has ended."""


async def follow(client: Client, event_id: str, *, console: Console | None) -> EventRecord:
    """Follow an event until it ends, printing each new timeline entry; without a
    ``console``, ask only for the outcome (one long poll, not one per phase). Bound it with a
    cancel scope: it long-polls the control plane, it does not give up by itself."""
    seen = 0
    while True:
        since = seen if console is not None else OUTCOME_ONLY
        # Only an answer that may be the last carries the manifests: the outcome, when asked.
        record = await client.event(
            event_id, wait=LONG_POLL, since=since, manifests=console is None
        )
        if console is not None:
            for entry in record.timeline[seen:]:
                console.print(render.timeline_line(entry))
        seen = len(record.timeline)
        if record.state.terminal:
            return record


_show = show.show
_person = show.person


async def submit(
    settings: ProduceConfig, outcome: list[int], shutdown: trio.Event | None = None
) -> None:
    """``k8s``: one event (``--agent``), or a rollout (:func:`rollouts.submit_rollout`)."""
    shutdown = trio.Event() if shutdown is None else shutdown
    console = Console(highlight=False, soft_wrap=True)
    try:
        manifests = read_manifests(settings.manifests)
    except ManifestFileError as exc:
        print(f"transporter produce: {exc}", file=sys.stderr)
        outcome.append(EXIT_USAGE)
        return
    client = _submitter(settings)
    payload: dict[str, Any] = {
        "manifests": manifests,
        "action": "delete" if settings.delete else "apply",
    }
    if settings.wait_ready:
        payload["wait_ready"] = True
        if settings.ready_timeout is not None:
            payload["ready_timeout"] = settings.ready_timeout
    if settings.targets is not None:
        outcome.append(await rollouts.submit_rollout(settings, payload, client, shutdown))
        return
    body: dict[str, Any] = {"target_agent": settings.agent, "payload": payload}
    if settings.ttl is not None:
        body["ttl"] = settings.ttl
    submitted = await client.submit(body)
    person = _person(settings)
    if person:
        note = "" if submitted.agent_known else f" (agent {settings.agent} has never registered;"
        note += " it waits in the outbox)" if note else ""
        done = "queued" if settings.mode == "queue" else "accepted"
        console.print(escape(f"event {submitted.event_id} {done}{note}"))
    if not settings.wait:
        if not person:
            answer = {"event_id": submitted.event_id, "agent_known": submitted.agent_known}
            _show(settings, "event", answer, [submitted.event_id])
        outcome.append(EXIT_OK)
        return
    record: EventRecord | None = None
    with trio.move_on_after(settings.timeout):
        record = await follow(client, submitted.event_id, console=console if person else None)
    if record is None:
        record = await client.event(submitted.event_id)
        message = f"event {submitted.event_id} not finished after {settings.timeout:g} s"
        if person:
            console.print(f"[bold red]{escape(message)}[/] (state {record.state.value})")
        else:
            shown = {**codec.unstructure(record), "timed_out": True}
            _show(settings, "event", shown, [submitted.event_id])
        outcome.append(EXIT_FAILED)
        return
    resources = render.resources_rows(record) if record.resources else None
    _show(settings, "event", codec.unstructure(record), [submitted.event_id], resources)
    outcome.append(EXIT_OK if record.state is EventState.COMPLETED else EXIT_FAILED)


def _submitter(settings: ProduceConfig) -> Client:
    """The API client, or in queue mode one whose submissions go to the queue."""
    if settings.mode == "queue" and settings.redis and settings.open_queue:
        return QueueClient(settings, settings.open_queue, settings.redis)
    return Client(settings.cp_url, token=settings.token, ca_file=settings.ca_cert)


async def query(
    settings: QueryConfig, outcome: list[int], shutdown: trio.Event | None = None
) -> None:
    console = Console(highlight=False, soft_wrap=True)
    client = Client(settings.cp_url, token=settings.token, ca_file=settings.ca_cert)
    if settings.what == "dead-letters":
        outcome.append(await queue.dead_letters(settings, client))
        return
    if settings.what in ("rollouts", "rollout", "plans", "plan"):
        outcome.append(
            await rollouts.query(settings, client, trio.Event() if shutdown is None else shutdown)
        )
        return
    wide, now = settings.output == "wide", time.time()
    if settings.what == "events":
        records = await client.events(
            agent=settings.agent, state=settings.state, limit=settings.limit
        )
        table = render.events_rows(records, now, wide=wide)
        ids = [record.event.id for record in records]
        _show(settings, "event", codec.unstructure(records), ids, table)
    elif settings.what == "event":
        assert settings.name is not None
        record = await client.event(settings.name)
        if settings.watch and not record.state.terminal:
            with trio.move_on_after(settings.timeout):
                shown = console if _person(settings) else None
                followed = await follow(client, settings.name, console=shown)
                record = attrs.evolve(followed, event=record.event)  # with its manifests
        if _person(settings):
            render.show_event(console, record)
        else:
            _show(settings, "event", codec.unstructure(record), [record.event.id])
    else:
        if settings.what == "agents":
            agents = await client.agents()
        else:
            assert settings.name is not None
            agents = [await client.agent(settings.name)]
        table = render.agents_rows(agents, now, wide=wide)
        data = codec.unstructure(agents if settings.what == "agents" else agents[0])
        _show(settings, "agent", data, [agent.info.id for agent in agents], table)
    outcome.append(EXIT_OK)


type Settings = ProduceConfig | QueryConfig | PlanConfig | ApplyPlanConfig | RolloutOpConfig


async def _job(settings: Settings, outcome: list[int], shutdown: trio.Event) -> None:
    """The command ``settings`` are for; its exit code into ``outcome``."""
    if isinstance(settings, ProduceConfig):
        await submit(settings, outcome, shutdown)
    elif isinstance(settings, QueryConfig):
        await query(settings, outcome, shutdown)
    else:
        client = Client(settings.cp_url, token=settings.token, ca_file=settings.ca_cert)
        if isinstance(settings, PlanConfig):
            outcome.append(await plans.plan(settings, client, shutdown))
        elif isinstance(settings, ApplyPlanConfig):
            outcome.append(await plans.apply(settings, client, shutdown))
        else:
            outcome.append(await rollouts.operate(settings, client))


def main(settings: Settings) -> int:
    runtime.configure_logging(debug=False, log_format=settings.log_format)
    outcome: list[int] = []

    async def role(shutdown: trio.Event) -> None:
        await _job(settings, outcome, shutdown)

    try:
        runtime.run(partial(role), grace=0.5)
    except BaseException as exc:
        return _failure(exc)
    return outcome[0] if outcome else EXIT_FAILED


def _failure(exc: BaseException) -> int:
    """The exit code and one line on stderr for what stopped the producer."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    if isinstance(exc, ApiError):
        hint = " (the token comes from --token or TRANSPORTER_TOKEN)" if exc.status == 401 else ""
        print(f"transporter produce: the control plane refused: {exc}{hint}", file=sys.stderr)
        return EXIT_USAGE if 400 <= exc.status < 500 and exc.status != 404 else EXIT_FAILED
    if isinstance(exc, QueueError):
        print(f"transporter produce: the queue: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if isinstance(exc, Unreachable):
        print(f"transporter produce: control plane unreachable: {exc}", file=sys.stderr)
        return EXIT_FAILED
    raise exc
