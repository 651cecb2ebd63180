"""``transporter produce plan`` and ``apply``: what applying would do on each cluster (a dry
run there, nothing written), then applying exactly that.

``plan`` waits for every cluster's plan and shows each object's result with the fields that
would change; exit 0 when every cluster could plan, 1 when some could not (or following
stopped first), 2 for a wrong request. ``apply PLAN`` starts a rollout of the plan on the
clusters whose plan completed (an object changed since is not touched: drifted), and with
``--wait`` follows it as ``k8s --wait`` does.
"""

from __future__ import annotations

from typing import Any

import trio
from rich.console import Console
from rich.text import Text

from transporter.config.produce import ApplyPlanConfig, PlanConfig
from transporter.produce import rollout_render, rollouts, show
from transporter.produce.client import Client
from transporter.produce.files import ManifestFileError, read_manifests
from transporter.produce.views import ClusterView, RolloutView, plain

WOULD = ("would_create", "would_change", "would_delete", "refused", "failed", "drifted")
"""Object results a plan's summary counts (``unchanged`` and ``not_found`` are nothing to do)."""


SHOWN_FAILURES = 10
"""Clusters whose plan did not complete named in the summary (the table shows them all)."""


def unplanned(view: RolloutView) -> list[ClusterView]:
    """The clusters whose plan did not complete (failed, expired, cancelled, or not yet):
    applying the plan leaves them out, and what it would do there is not known."""
    return [cluster for cluster in view.clusters if cluster.state != "completed"]


def summary(view: RolloutView) -> str:
    """``2 would_create, 1 would_change on 3 cluster(s)``: what applying would do. When some
    cluster could not plan, never ``nothing to change``: which clusters, and why."""
    counts: dict[str, int] = {}
    for cluster in view.clusters:
        for result in cluster.resources:
            counts[result.status.value] = counts.get(result.status.value, 0) + 1
    parts = ", ".join(f"{counts[status]} {status}" for status in WOULD if counts.get(status))
    missing = unplanned(view)
    if not missing:
        return f"{parts or 'nothing to change'} on {len(view.clusters)} cluster(s)"
    planned = len(view.clusters) - len(missing)
    found = f"{parts or 'no change found'} on the {planned} cluster(s) that planned; "
    named = [
        f"{c.agent_id} ({c.state}{': ' + _cut(c.message) if c.message else ''})"
        for c in missing[:SHOWN_FAILURES]
    ]
    more = f" and {len(missing) - SHOWN_FAILURES} more" if len(missing) > SHOWN_FAILURES else ""
    return f"{found}{len(missing)} did not plan: {', '.join(named)}{more}"


def _cut(message: str, bound: int = 160) -> str:
    return message if len(message) <= bound else message[: bound - 1] + "…"


async def plan(settings: PlanConfig, client: Client, shutdown: trio.Event) -> int:
    try:
        manifests = read_manifests(settings.manifests)
    except ManifestFileError as exc:
        show.complain(str(exc))
        return show.EXIT_USAGE
    console = Console(highlight=False, soft_wrap=True)
    action = "delete" if settings.delete else "apply"
    body: dict[str, Any] = {
        "payload": {"manifests": manifests, "action": action},
        **rollouts.targets_body(settings.targets),
    }
    if settings.ttl is not None:
        body["ttl"] = settings.ttl
    if settings.plan_id is not None:
        body["id"] = settings.plan_id
    answer = await client.submit_plan(body)
    plan_id = str(answer.get("plan_id") or answer.get("rollout_id") or "")
    if show.person(settings):
        console.print(Text(rollouts.accepted_line({**answer, "rollout_id": plan_id}, "plan")))
    _, why = await rollouts.watch(settings, client, plan_id, console, shutdown)
    if why == "interrupted":
        console.print(Text(f"stopped waiting; see it: transporter produce get plan {plan_id}"))
        return show.EXIT_FAILED
    data = await client.plan(plan_id)
    view = RolloutView.of(data)
    if not show.person(settings):
        shown = data if why == "settled" else {**data, "timed_out": True}
        show.show(settings, "plan", shown, [plan_id])
    else:
        show.write(rollout_render.plan_text(view, headers=not settings.no_headers))
        _said(console, settings, plan_id, view, why)
    return show.EXIT_OK if why == "settled" and view.succeeded else show.EXIT_FAILED


def _said(
    console: Console, settings: PlanConfig, plan_id: str, view: RolloutView, why: str
) -> None:
    """The plan's last lines: what applying would do, and how to apply it only when every
    cluster planned (an apply leaves out the clusters that did not)."""
    console.print(Text(plain(f"plan {plan_id}: {summary(view)}")))
    if why == "timeout":
        console.print(
            Text(
                f"not every cluster planned after {settings.timeout:g} s; see it:"
                f" transporter produce get plan {plan_id}"
            )
        )
    elif unplanned(view):
        console.print(
            Text(f"fix what failed and plan again: transporter produce get plan {plan_id}")
        )
    else:
        console.print(Text(f"apply it: transporter produce apply {plan_id} --wait"))


async def apply(settings: ApplyPlanConfig, client: Client, shutdown: trio.Event) -> int:
    body = rollouts.options_body(settings.rollout)
    if settings.wait_ready:
        body["wait_ready"] = True
        if settings.ready_timeout is not None:
            body["ready_timeout"] = settings.ready_timeout
    answer = await client.apply_plan(settings.plan_id, body)
    return await rollouts.announced(settings, client, answer, wait=settings.wait, shutdown=shutdown)
