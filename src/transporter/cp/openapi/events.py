"""``/events``: submitting events, one or a batch, and reading them back."""

from __future__ import annotations

from typing import Any

from transporter.cp.openapi.bounds import EVENTS_PAGE, MAX_SINCE
from transporter.cp.openapi.parts import (
    BAD_QUERY,
    BOOLEAN,
    CURSOR,
    INTEGER,
    JSON,
    STRING,
    UNAVAILABLE,
    answer,
    array,
    error,
    limit,
    obj,
    path,
    query,
    ref,
)
from transporter.cp.openapi.schemas import STATE


def paths(*, max_wait: float, max_limit: int, max_batch: int) -> dict[str, Any]:
    return {
        "/events": {"post": _submit(), "get": _list(max_limit)},
        "/events/batch": {"post": _submit_batch(max_batch)},
        "/events/{event_id}": {"get": _get(max_wait)},
    }


def _submit() -> dict[str, Any]:
    body = {"anyOf": [ref("EventSubmission"), ref("RolloutSubmission")]}
    return {
        "operationId": "submitEvent",
        "summary": (
            "Submit an event (``target_agent``), or a rollout (``target_agents`` or "
            "``selector``: one child event per matched agent): stored durably, then answered."
        ),
        "requestBody": {"required": True, "content": {JSON: {"schema": body}}},
        "responses": {
            "202": answer(
                "Accepted and stored.",
                {"anyOf": [ref("Submitted"), ref("RolloutAccepted")]},
            ),
            "200": answer(
                "The same ``id`` and content again: nothing new stored.",
                {"anyOf": [ref("Submitted"), ref("RolloutExists")]},
            ),
            **_submit_errors(),
            "400": error(
                "Not a valid event (``invalid_event``); ``field`` says where. A rollout whose "
                "targets matched no agent (``no_match``), unless ``allow_empty``, or more than one "
                "rollout takes (``too_many_agents``)."
            ),
            "413": error(
                "Over a limit (``event_too_large``, or a body over the size limit), or a "
                "rollout's child events together over 256 MiB (``rollout_too_large``: its "
                "clusters times the size of each)."
            ),
        },
    }


def _submit_errors() -> dict[str, Any]:
    return {
        "400": error("Not a valid event (``invalid_event``); ``field`` says where."),
        "409": error("An event with this ``id`` exists with other content (``conflict``)."),
        "413": error("Over a limit (``event_too_large``, or a body over the size limit)."),
        "503": UNAVAILABLE,
    }


def _list(max_limit: int) -> dict[str, Any]:
    return {
        "operationId": "listEvents",
        "summary": "Events, newest first, a page at a time.",
        "parameters": [
            query("agent", STRING, "Only this agent's events."),
            query("state", STATE, "Only this state."),
            limit(EVENTS_PAGE, max_limit),
            CURSOR,
        ],
        "responses": {
            "200": answer("A page of events.", ref("EventPage")),
            "400": BAD_QUERY,
            "503": UNAVAILABLE,
        },
    }


def _submit_batch(max_batch: int) -> dict[str, Any]:
    events = {
        "type": "array",
        "minItems": 1,
        "maxItems": max_batch,
        "items": ref("EventSubmission"),
    }
    # Each event succeeds or fails alone: its place in ``results`` holds its answer or its error.
    submitted = obj(
        ["event_id", "status", "agent_known"],
        event_id=STRING,
        status={"enum": ["accepted", "exists"]},
        agent_known=BOOLEAN,
    )
    results = obj(
        ["results", "accepted", "refused"],
        results=array({"oneOf": [submitted, ref("Error")]}),
        accepted=INTEGER,
        refused=INTEGER,
    )
    return {
        "operationId": "submitEvents",
        "summary": "Submit many events in one request; each succeeds or fails alone.",
        "requestBody": {
            "required": True,
            "content": {JSON: {"schema": obj(["events"], events=events)}},
        },
        "responses": {
            "202": answer("Every event accepted (or existing already).", results),
            "207": answer(
                "Some events refused: ``results[i]`` is what became of ``events[i]``.", results
            ),
            "400": error('Not ``{"events": [...]}`` (``invalid_batch``).'),
            "413": error(f"More than {max_batch} events, or a body over the size limit."),
            "503": UNAVAILABLE,
        },
    }


def _get(max_wait: float) -> dict[str, Any]:
    return {
        "operationId": "getEvent",
        "summary": "One event: state, phase, per-resource results and the timeline.",
        "parameters": [path("event_id", "The event's id."), *_follow(max_wait)],
        "responses": {
            "200": answer("The event.", ref("EventRecord")),
            "400": BAD_QUERY,
            "404": error("No such event (``not_found``)."),
            "503": UNAVAILABLE,
        },
    }


def _follow(max_wait: float) -> list[dict[str, Any]]:
    """How a client follows an event's phases with long polls instead of tight ones."""
    wait = {"type": "number", "minimum": 0, "maximum": max_wait, "default": 0}
    since = {"type": "integer", "minimum": 0, "maximum": MAX_SINCE, "default": 0}
    return [
        query(
            "wait",
            wait,
            "Hold the answer up to this many seconds until the timeline has more "
            "than ``since`` entries (or the event has ended).",
        ),
        query("since", since, "Timeline entries already seen."),
        # No schema default, as it depends on ``wait``: a client that waits is following the
        # event's phases, and its manifests would only weigh down every answer.
        query(
            "manifests",
            BOOLEAN,
            "with wait, the payload's manifests are left out (an empty list) unless "
            "manifests=true; without wait they are included unless manifests=false",
        ),
    ]
