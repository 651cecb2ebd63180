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
from transporter.produce.views import RolloutView

WOULD = ("would_create", "would_change", "would_delete", "refused", "failed", "drifted")
"""Object results a plan's summary counts (``unchanged`` and ``not_found`` are nothing to do)."""


def summary(view: RolloutView) -> str:
    """``2 would_create, 1 would_change on 3 clusters``: what applying would do."""
    counts: dict[str, int] = {}
    for cluster in view.clusters:
        for result in cluster.resources:
            counts[result.status.value] = counts.get(result.status.value, 0) + 1
    parts = [f"{counts[status]} {status}" for status in WOULD if counts.get(status)]
    return f"{', '.join(parts) or 'nothing to change'} on {len(view.clusters)} cluster(s)"


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
        console.print(Text(f"plan {plan_id}: {summary(view)}"))
        if why == "timeout":
            console.print(
                Text(
                    f"not every cluster planned after {settings.timeout:g} s; see it:"
                    f" transporter produce get plan {plan_id}"
                )
            )
        console.print(Text(f"apply it: transporter produce apply {plan_id} --wait"))
    return show.EXIT_OK if why == "settled" and view.succeeded else show.EXIT_FAILED


async def apply(settings: ApplyPlanConfig, client: Client, shutdown: trio.Event) -> int:
    body = rollouts.options_body(settings.rollout)
    if settings.wait_ready:
        body["wait_ready"] = True
        if settings.ready_timeout is not None:
            body["ready_timeout"] = settings.ready_timeout
    answer = await client.apply_plan(settings.plan_id, body)
    return await rollouts.announced(settings, client, answer, wait=settings.wait, shutdown=shutdown)
