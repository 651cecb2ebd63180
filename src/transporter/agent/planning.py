"""An event of action ``plan``: what applying its manifests would do on this cluster, object by
object, and nothing written (:mod:`transporter.kube.preview`).

The validating phase is an apply's (parse, discovery, the policy's reads), but a policy refusal
does not end the plan: each refused object is ``refused`` with the policy's words, the others
are planned; an object whose dry run the API server refused in the policy's reads is ``failed``
with its message. The plan completes when it could be made, whatever it found; it fails when it
could not (every object failed; invalid manifests and an unavailable cluster fail the event
before this).

A plan of a delete (``plan_of: delete``) is judged by the policy as a delete and says
``would_delete`` or ``not_found`` of each object. An object the event names a second time is
``failed`` (its apply would make the first one's look drifted), as it is in the plan's apply.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from transporter.agent.drift import repeated
from transporter.agent.inspection import inspect
from transporter.agent.policy import Policy
from transporter.kube import KubeTarget, Plan
from transporter.protocol.model import ResourceResult, ResourceStatus


def plan_summary(results: Sequence[ResourceResult]) -> str:
    """``plan: 1 would_create, 2 would_change, 1 refused`` (in the order first met)."""
    counts = Counter(r.status.value for r in results)
    said = ", ".join(f"{n} {status}" for status, n in counts.items())
    return f"plan: {said or 'nothing to do'}"


def plan_failed(results: Sequence[ResourceResult]) -> bool:
    """Whether the plan could not be made: every object failed."""
    return bool(results) and all(r.status is ResourceStatus.FAILED for r in results)


async def make_plan(
    target: KubeTarget,
    policy: Policy,
    plan: Plan,
    *,
    delete: bool = False,
    headers: Mapping[str, str] | None = None,
) -> list[ResourceResult]:
    """One result per object (the plan's problems first, then its objects in order).
    ``delete``: a delete is planned (``plan_of``), judged by the policy as a delete. Refused
    objects, and an object named a second time, carry no fingerprint: applying the plan leaves
    them alone (not in ``expect``, or failed again as a second one)."""
    twice = repeated(plan.objects)
    view = await inspect(target, policy, plan.objects, delete=delete, headers=headers)
    refused = {id(r.object): r.message for r in policy.check(plan.objects, view, delete=delete)}
    doing = "to show it" if delete else "a dry run of it"
    settled: dict[int, ResourceResult] = {}
    for index, obj in enumerate(plan.objects):
        if index in twice:
            settled[index] = obj.result(ResourceStatus.FAILED, twice[index])
        elif id(obj) in refused:
            settled[index] = obj.result(ResourceStatus.REFUSED, refused[id(obj)])
        elif index in view.refused:
            why = f"the API server refused {doing}: {view.refused[index]}"
            settled[index] = obj.result(ResourceStatus.FAILED, why)
    rest = [obj for index, obj in enumerate(plan.objects) if index not in settled]
    planned = iter(await target.preview(rest, delete=delete, headers=headers))
    results = [settled[i] if i in settled else next(planned) for i in range(len(plan.objects))]
    return [*plan.problems, *results]
