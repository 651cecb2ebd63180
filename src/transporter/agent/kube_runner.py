"""The phases of a ``k8s_resource`` event on this agent's cluster.

validating (parse, discover kinds, check the agent's policy) → applying (server-side apply, or
delete) → verifying (read back) → completed | failed. Every resource's result is reported, also
when others failed. An event the policy refuses fails before anything of it is applied.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence

from transporter.agent.policy import DEFAULT_POLICY, Policy, refusal_message, refused_results
from transporter.agent.worker import Reporter
from transporter.kube import KubeTarget, KubeUnavailable, ManifestError
from transporter.protocol.model import (
    Action,
    Event,
    EventState,
    Phase,
    ResourceResult,
    ResourceStatus,
)

log = logging.getLogger(__name__)


def summary(results: Sequence[ResourceResult]) -> str:
    """``2 created, 1 unchanged`` or ``1 of 3 failed: <first failure>``."""
    failed = [r for r in results if r.status is ResourceStatus.FAILED]
    if failed:
        first = failed[0]
        where = f"{first.kind}/{first.name}"
        return f"{len(failed)} of {len(results)} failed: {where}: {first.message}"
    counts = Counter(r.status.value for r in results)
    return ", ".join(f"{n} {status}" for status, n in counts.items()) or "nothing to do"


class KubeRunner:
    def __init__(self, target: KubeTarget, policy: Policy = DEFAULT_POLICY) -> None:
        self.target = target
        self.policy = policy

    async def __call__(self, event: Event, report: Reporter) -> None:
        try:
            await self._phases(event, report)
        except ManifestError as exc:
            report(EventState.FAILED, Phase.FAILED, f"invalid manifests: {exc}")
        except KubeUnavailable as exc:
            report(EventState.FAILED, Phase.FAILED, f"cluster unavailable: {exc}")
        except Exception as exc:  # a bug of ours must fail the event, not the agent
            log.exception("event %s: unexpected error", event.id)
            report(EventState.FAILED, Phase.FAILED, f"agent error: {type(exc).__name__}: {exc}")

    async def _phases(self, event: Event, report: Reporter) -> None:
        report(EventState.IN_PROGRESS, Phase.VALIDATING)
        plan = await self.target.plan(event.payload.manifests)
        refusals = self.policy.check(plan.objects)
        if refusals:  # nothing of the event is applied (or deleted)
            message = refusal_message(refusals)
            log.warning("event %s: %s", event.id, message)
            results = [*plan.problems, *refused_results(plan.objects, refusals)]
            report(EventState.FAILED, Phase.FAILED, message, tuple(results))
            return
        if event.payload.action is Action.DELETE:
            report(EventState.IN_PROGRESS, Phase.APPLYING, "deleting")
            results = [*plan.problems, *await self.target.delete(plan)]
        else:
            report(EventState.IN_PROGRESS, Phase.APPLYING)
            applied = await self.target.apply(plan)
            report(EventState.IN_PROGRESS, Phase.VERIFYING)
            results = [*plan.problems, *await self.target.verify(applied)]
        failed = any(r.status is ResourceStatus.FAILED for r in results)
        state, phase = (
            (EventState.FAILED, Phase.FAILED) if failed else (EventState.COMPLETED, Phase.COMPLETED)
        )
        report(state, phase, summary(results), tuple(results))
