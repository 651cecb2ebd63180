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

from transporter import output, runtime
from transporter.config.produce import ProduceConfig, QueryConfig
from transporter.produce import render
from transporter.produce.client import ApiError, Client, Unreachable
from transporter.produce.files import ManifestFileError, read_manifests
from transporter.protocol import codec
from transporter.protocol.model import EventRecord, EventState

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
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


def _print(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _show(
    settings: ProduceConfig | QueryConfig,
    kind: str,
    data: object,
    ids: list[str],
    table: render.Rows | None = None,
) -> None:
    """``data`` (unstructured) in a structured format or as names; else ``table``."""
    if settings.output in ("json", "yaml"):
        _print(output.structured(data, settings.output))
    elif settings.output == "name":
        _print(output.names(kind, ids))
    elif table is not None:
        headers, rows = table
        _print(output.columns(rows, headers=None if settings.no_headers else headers))


def _person(settings: ProduceConfig | QueryConfig) -> bool:
    """Whether the output is for a person (phases shown as they come)."""
    return settings.output in ("text", "wide")


async def submit(settings: ProduceConfig, outcome: list[int]) -> None:
    console = Console(highlight=False, soft_wrap=True)
    try:
        manifests = read_manifests(settings.manifests)
    except ManifestFileError as exc:
        print(f"transporter produce: {exc}", file=sys.stderr)
        outcome.append(EXIT_USAGE)
        return
    client = Client(settings.cp_url, token=settings.token, ca_file=settings.ca_cert)
    body: dict[str, Any] = {
        "target_agent": settings.agent,
        "payload": {"manifests": manifests, "action": "delete" if settings.delete else "apply"},
    }
    if settings.ttl is not None:
        body["ttl"] = settings.ttl
    submitted = await client.submit(body)
    person = _person(settings)
    if person:
        note = "" if submitted.agent_known else f" (agent {settings.agent} has never registered;"
        note += " it waits in the outbox)" if note else ""
        console.print(escape(f"event {submitted.event_id} accepted{note}"))
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


async def query(settings: QueryConfig, outcome: list[int]) -> None:
    console = Console(highlight=False, soft_wrap=True)
    client = Client(settings.cp_url, token=settings.token, ca_file=settings.ca_cert)
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


def main(settings: ProduceConfig | QueryConfig) -> int:
    runtime.configure_logging(debug=False, log_format=settings.log_format)
    outcome: list[int] = []
    job = submit if isinstance(settings, ProduceConfig) else query

    async def role(shutdown: trio.Event) -> None:
        await job(settings, outcome)  # type: ignore[arg-type]

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
    if isinstance(exc, Unreachable):
        print(f"transporter produce: control plane unreachable: {exc}", file=sys.stderr)
        return EXIT_FAILED
    raise exc
