"""``/rollouts`` and ``/plans``: one request for many clusters, and cancelling an event.

A rollout is submitted with ``POST /events`` (``target_agents`` or ``selector``: see
:mod:`.events`); a plan with ``POST /plans``.
"""

from __future__ import annotations

from typing import Any

from transporter.cp.openapi.bounds import (
    MAX_PLAN_CLUSTERS,
    MAX_WAVE,
    ROLLOUTS_LIMIT,
    ROLLOUTS_PAGE,
)
from transporter.cp.openapi.parts import (
    BAD_QUERY,
    CURSOR,
    INTEGER,
    JSON,
    STRING,
    UNAVAILABLE,
    answer,
    error,
    limit,
    obj,
    path,
    query,
    ref,
)
from transporter.cp.openapi.rollout_schemas import ROLLOUT_KIND, ROLLOUT_STATE

EXAMPLE_ROLLOUT = "web-v2"
EXAMPLE_PLAN = "web-v2-plan"
_ROLLOUT = {**path("rollout_id", "The rollout's (or plan's) id."), "example": EXAMPLE_ROLLOUT}
_PLAN = {**path("plan_id", "The plan's id."), "example": EXAMPLE_PLAN}
_UNKNOWN = error("No such rollout (``not_found``).")
_NO_FIELDS = {"type": "object", "additionalProperties": False}
_BAD_BODY = error("The body is not as described (``invalid_request``); ``field`` says where.")


def _optional(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": False, "content": {JSON: {"schema": schema}}}


def paths() -> dict[str, Any]:
    return {
        "/rollouts": {"get": _list("listRollouts", kinds=True)},
        "/rollouts/{rollout_id}": {"get": _get()},
        "/rollouts/{rollout_id}/approve": {"post": _approve()},
        "/rollouts/{rollout_id}/cancel": {"post": _cancel()},
        "/rollouts/{rollout_id}/close": {"post": _close()},
        "/events/{event_id}/cancel": {"post": _cancel_event()},
        "/plans": {"post": _submit_plan(), "get": _list("listPlans", kinds=False)},
        "/plans/{plan_id}": {"get": _get_plan()},
        "/plans/{plan_id}/apply": {"post": _apply_plan()},
    }


def _list(operation: str, *, kinds: bool) -> dict[str, Any]:
    kind = [query("kind", ROLLOUT_KIND, "Only rollouts of this kind.")] if kinds else []
    return {
        "operationId": operation,
        "summary": (
            "Rollouts and plans, newest first, a page at a time (those whose every agent the "
            "token reaches)."
            if kinds
            else "Plans, newest first (``GET /rollouts?kind=plan``)."
        ),
        "parameters": [
            query("state", ROLLOUT_STATE, "Only this state."),
            *kind,
            limit(ROLLOUTS_PAGE, ROLLOUTS_LIMIT),
            CURSOR,
        ],
        "responses": {
            "200": answer("A page of summaries.", ref("RolloutPage")),
            "400": BAD_QUERY,
            "503": UNAVAILABLE,
        },
    }


def _get() -> dict[str, Any]:
    return {
        "operationId": "getRollout",
        "summary": "One rollout: its strategy, every cluster and its state, the timeline.",
        "parameters": [_ROLLOUT],
        "responses": {
            "200": answer("The rollout.", ref("Rollout")),
            "404": _UNKNOWN,
            "503": UNAVAILABLE,
        },
    }


def _approve() -> dict[str, Any]:
    wave = {"type": "integer", "minimum": 0, "maximum": MAX_WAVE}
    return {
        "operationId": "approveRollout",
        "summary": "Release the wave that waits for an approval.",
        "parameters": [_ROLLOUT],
        "requestBody": _optional(obj([], wave={**wave, "description": "Default: the one."})),
        "responses": {
            "200": answer("Released.", obj(None, rollout_id=STRING, approved=wave)),
            "400": _BAD_BODY,
            "404": _UNKNOWN,
            "409": error("No wave waits for an approval (or another does)."),
            "503": UNAVAILABLE,
        },
    }


def _cancel() -> dict[str, Any]:
    done = obj(None, rollout_id=STRING, state=ROLLOUT_STATE, cancelled=INTEGER, running=INTEGER)
    return {
        "operationId": "cancelRollout",
        "summary": (
            "Start nothing more: clusters not started and child events still queued end "
            "cancelled; those sent already finish."
        ),
        "parameters": [_ROLLOUT],
        "requestBody": _optional(_NO_FIELDS),
        "responses": {
            "200": answer("How many were cancelled, and how many still run.", done),
            "400": _BAD_BODY,
            "404": _UNKNOWN,
            "503": UNAVAILABLE,
        },
    }


def _close() -> dict[str, Any]:
    done = obj(None, rollout_id=STRING, state=ROLLOUT_STATE, closed={"type": "boolean"})
    return {
        "operationId": "closeRollout",
        "summary": "A standing rollout takes no new agent any more.",
        "parameters": [_ROLLOUT],
        "requestBody": _optional(_NO_FIELDS),
        "responses": {
            "200": answer("Closed (or not standing: nothing changed).", done),
            "400": _BAD_BODY,
            "404": _UNKNOWN,
            "503": UNAVAILABLE,
        },
    }


def _cancel_event() -> dict[str, Any]:
    done = obj(None, event_id=STRING, state={"const": "cancelled"})
    return {
        "operationId": "cancelEvent",
        "summary": "Cancel an event still queued: it is never sent to its agent.",
        "parameters": [path("event_id", "The event's id.")],
        "responses": {
            "200": answer("Cancelled.", done),
            "404": error("No such event (``not_found``)."),
            "409": error(
                "Sent already, or ended (``not_cancellable``): the message says its state."
            ),
            "503": UNAVAILABLE,
        },
    }


def _submit_plan() -> dict[str, Any]:
    return {
        "operationId": "submitPlan",
        "summary": "Plan manifests on many clusters: a server-side dry run on each.",
        "requestBody": {"required": True, "content": {JSON: {"schema": ref("PlanSubmission")}}},
        "responses": {
            "202": answer("Accepted; the dry runs start.", ref("PlanAccepted")),
            "200": answer("The same ``id`` and request again.", ref("PlanExists")),
            "400": error(
                "Not a valid plan (``invalid_event``, ``field`` says where), no agent "
                "matched (``no_match``), or more than one plan takes (``too_many_agents``)."
            ),
            "409": error("A rollout with this ``id`` exists with other content (``conflict``)."),
            "413": error(
                "Over a limit (``event_too_large``, or a body over the size limit), or the "
                "plan's child events together over 256 MiB (``rollout_too_large``)."
            ),
            "503": UNAVAILABLE,
        },
    }


def _get_plan() -> dict[str, Any]:
    return {
        "operationId": "getPlan",
        "summary": (
            "A plan: each cluster with what an apply would do to each object (a compact "
            "diff, Secrets' values redacted) and the fingerprint of what it saw."
        ),
        "parameters": [
            _PLAN,
            query(
                "agent",
                STRING,
                "Only this agent's cluster, with its results. Without it, the results of the "
                f"first {MAX_PLAN_CLUSTERS} clusters are shown (``results_for``); the others' "
                "``resources`` are empty.",
            ),
        ],
        "responses": {
            "200": answer("The plan.", ref("Plan")),
            "404": error("No such plan, or no cluster of it for ``agent`` (``not_found``)."),
            "503": UNAVAILABLE,
        },
    }


def _apply_plan() -> dict[str, Any]:
    return {
        "operationId": "applyPlan",
        "summary": (
            "Roll out what the plan planned, to the clusters whose plan completed: an object "
            "that changed since, or was not planned, is not touched (``drifted``)."
        ),
        "parameters": [_PLAN],
        "requestBody": _optional(ref("PlanApply")),
        "responses": {
            "202": answer("The rollout is accepted.", ref("RolloutAccepted")),
            "200": answer("The same rollout ``id`` again.", ref("RolloutExists")),
            "400": error(
                "The body is not valid (``invalid_request``), or no cluster's plan completed "
                "(``no_match``)."
            ),
            "404": error("No such plan (``not_found``)."),
            "409": error(
                "The plan has not finished (``plan_not_ready``), or the rollout ``id`` is "
                "taken (``conflict``)."
            ),
            "410": error("The plan's ttl has passed (``plan_expired``): plan again."),
            "503": UNAVAILABLE,
        },
    }
