"""The phases of a ``k8s_resource`` event on this agent's cluster.

validating (parse, discover kinds, read what the policy needs — objects as the apply would
leave them, by server-side dry run — and check the agent's policy) → applying (server-side
apply, or delete) → verifying (each apply's answer, the object as stored, judged created,
updated or unchanged: :mod:`transporter.kube.apply`; with ``wait_ready``, wait until every
applied object is ready: :mod:`.readying`) → completed | failed. Every resource's result is
reported, also when others failed. An event the policy refuses fails before anything of it is
applied; an object whose dry run the API server refused is not applied (the others are).

A plan (action ``plan``) stops after validating with each object's dry run (:mod:`.planning`):
nothing is written. Applying a plan (``payload.expect``) touches only the objects still as the
plan saw them (:mod:`.drift`).

Every message reported (the event's, and each resource's, and a plan's field changes) is
scrubbed of the values of the event's Secrets first: the API server quotes submitted values in
some of its errors, and a report is stored, audited and shown
(:mod:`transporter.security.redact`).
"""

from __future__ import annotations

import logging
import traceback
from collections import Counter
from collections.abc import Mapping, Sequence

import attrs
import trio

from transporter.agent.drift import drift_message, hold_drifted
from transporter.agent.impersonation import NotImpersonable, headers_for
from transporter.agent.inspection import inspect
from transporter.agent.planning import make_plan, plan_failed, plan_summary
from transporter.agent.policy import (
    DEFAULT_POLICY,
    ClusterView,
    Policy,
    refusal_message,
    refused_results,
)
from transporter.agent.readying import DEFAULT_TIMEOUT, wait_ready
from transporter.agent.worker import Reporter
from transporter.kube import KubeTarget, KubeUnavailable, ManifestError, Plan
from transporter.logs import about
from transporter.protocol.model import (
    Action,
    Event,
    EventState,
    FieldChange,
    Phase,
    ResourceResult,
    ResourceStatus,
)
from transporter.security.redact import redact_manifests
from transporter.security.scrub import Scrubber

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


class ScrubbedReporter:
    """An event's :class:`Reporter`, with the values of its Secrets scrubbed from every message.

    :attr:`scrub` learns the values from the plan (validating phase); when the event fails
    before there is one, from the raw YAML (:func:`_scrubber_of`). The reports before either
    carry no message that could quote a manifest.
    """

    def __init__(self, report: Reporter) -> None:
        self.report = report
        self.scrub = Scrubber()

    def __call__(
        self,
        state: EventState,
        phase: Phase | None,
        message: str = "",
        resources: tuple[ResourceResult, ...] | None = None,
    ) -> None:
        self.report(state, phase, *self._scrubbed(message, resources))

    async def finish(
        self,
        state: EventState,
        phase: Phase,
        message: str,
        resources: tuple[ResourceResult, ...],
    ) -> None:
        """The last report, with every resource's result: scrubbed in a worker thread when
        there are values to look for (thousands of results may meet thousands of values)."""
        if not self.scrub:
            self(state, phase, message, resources)
            return
        scrubbed = await trio.to_thread.run_sync(
            self._scrubbed, message, resources, abandon_on_cancel=True
        )
        self.report(state, phase, *scrubbed)

    def _scrubbed(
        self, message: str, resources: tuple[ResourceResult, ...] | None
    ) -> tuple[str, tuple[ResourceResult, ...] | None]:
        if resources is not None:
            resources = tuple(self._result(r) for r in resources)
        return self.scrub(message), resources

    def _result(self, result: ResourceResult) -> ResourceResult:
        """The message and a plan's field changes (values, and paths: keys may be anything)."""
        if not result.message and not result.diff:
            return result
        diff = tuple(
            FieldChange(self.scrub(c.path), c.op, self.scrub(c.old), self.scrub(c.new))
            for c in result.diff
        )
        return attrs.evolve(result, message=self.scrub(result.message), diff=diff)


class KubeRunner:
    def __init__(
        self, target: KubeTarget, policy: Policy = DEFAULT_POLICY, *, impersonate: bool = False
    ) -> None:
        """``impersonate``: act as each event's producer (:mod:`.impersonation`)."""
        self.target = target
        self.policy = policy
        self.impersonate = impersonate

    async def __call__(self, event: Event, report: Reporter) -> None:
        scrubbed = ScrubbedReporter(report)
        try:
            await self._phases(event, scrubbed)
        except Exception as exc:  # a bug of ours too must fail the event, not the agent
            if not scrubbed.scrub:  # it failed before the plan: read the values from the YAML
                scrubbed.scrub = await _scrubber_of(event)
            if isinstance(exc, ManifestError):
                message = f"invalid manifests: {exc}"
            elif isinstance(exc, NotImpersonable):
                message = str(exc)
            elif isinstance(exc, KubeUnavailable):
                message = f"cluster unavailable: {exc}"
            else:
                # Logged through the scrubber: the exception's message may quote anything.
                trace = "".join(traceback.format_exception(exc)).rstrip()
                log.error(
                    "event %s: unexpected error\n%s",
                    event.id,
                    scrubbed.scrub(trace),
                    extra=about(event_id=event.id),
                )
                message = f"agent error: {type(exc).__name__}: {exc}"
            scrubbed(EventState.FAILED, Phase.FAILED, message)

    async def _phases(self, event: Event, report: ScrubbedReporter) -> None:
        report(EventState.IN_PROGRESS, Phase.VALIDATING)
        headers = headers_for(event) if self.impersonate else None
        plan = await self.target.plan(event.payload.manifests)
        secrets = [obj.body for obj in plan.objects if obj.kind == "Secret"]
        if secrets:  # lists are expanded in the plan: each Secret is an object of its own
            report.scrub = await trio.to_thread.run_sync(
                Scrubber.of_objects, secrets, abandon_on_cancel=True
            )
        payload = event.payload
        if payload.action is Action.PLAN:
            report(EventState.IN_PROGRESS, Phase.APPLYING, "dry run: nothing is written")
            of_delete = payload.plan_of is Action.DELETE
            planned = await make_plan(
                self.target, self.policy, plan, delete=of_delete, headers=headers
            )
            state, phase = _ending(failed=plan_failed(planned))
            await report.finish(state, phase, plan_summary(planned), tuple(planned))
            return
        delete = payload.action is Action.DELETE
        drifted: list[ResourceResult] = []
        expect = None
        if payload.expect:  # a plan's apply: what is not as planned is left out at once
            plan, drifted, expect = await hold_drifted(
                self.target, plan, payload.expect, delete=delete, headers=headers
            )
        view = await inspect(self.target, self.policy, plan.objects, delete=delete, headers=headers)
        refusals = self.policy.check(plan.objects, view, delete=delete)
        if refusals:  # nothing of the event is applied (or deleted)
            message = refusal_message(refusals)
            log.warning(
                "event %s: %s", event.id, report.scrub(message), extra=about(event_id=event.id)
            )
            results = [*plan.problems, *drifted, *refused_results(plan.objects, refusals)]
            await report.finish(EventState.FAILED, Phase.FAILED, message, tuple(results))
            return
        plan, unseen = _without_refused(plan, view, delete=delete)
        await self._change(event, plan, [*drifted, *unseen], report, headers, expect)

    async def _change(
        self,
        event: Event,
        plan: Plan,
        held: list[ResourceResult],
        report: ScrubbedReporter,
        headers: Mapping[str, str] | None,
        expect: Mapping[str, str] | None,
    ) -> None:
        """Applying (or deleting) and verifying what validating let through; ``held``: the
        results of objects that are not touched (drifted, or their dry run refused);
        ``expect``: a plan's apply, what each object must still be as it is applied."""
        payload = event.payload
        head = [*plan.problems, *held]
        not_ready = None
        if payload.action is Action.DELETE:
            report(EventState.IN_PROGRESS, Phase.APPLYING, "deleting")
            done = await self.target.delete(plan, headers=headers, expect=expect)
        else:
            report(EventState.IN_PROGRESS, Phase.APPLYING)
            applied = await self.target.apply(plan, headers=headers, expect=expect)
            report(EventState.IN_PROGRESS, Phase.VERIFYING)
            done = await self.target.verify(applied, headers=headers)
            if payload.wait_ready:

                def progress(message: str, now: list[ResourceResult]) -> None:
                    report(EventState.IN_PROGRESS, Phase.VERIFYING, message, (*head, *now))

                timeout = payload.ready_timeout or DEFAULT_TIMEOUT
                waited = await wait_ready(
                    self.target, applied, done, timeout=timeout, progress=progress, headers=headers
                )
                done, not_ready = waited.results, waited.failure
        results = [*head, *done]
        failed = any(r.status is ResourceStatus.FAILED for r in results)
        reasons = [why for why in (drift_message(results), not_ready) if why]
        said = "; ".join([*reasons, summary(results)] if failed or not reasons else reasons)
        state, phase = _ending(failed=failed or bool(reasons))
        await report.finish(state, phase, said, tuple(results))


def _ending(*, failed: bool) -> tuple[EventState, Phase]:
    if failed:
        return EventState.FAILED, Phase.FAILED
    return EventState.COMPLETED, Phase.COMPLETED


def _without_refused(
    plan: Plan, view: ClusterView, *, delete: bool
) -> tuple[Plan, list[ResourceResult]]:
    """The plan without the objects the API server would not show (their dry run, or their
    read before a delete, was refused), and their results: what is not seen is not sent."""
    if not view.refused:
        return plan, []
    doing = "to show it before the delete" if delete else "a dry run of it"
    unseen = [
        plan.objects[index].result(ResourceStatus.FAILED, f"the API server refused {doing}: {why}")
        for index, why in sorted(view.refused.items())
    ]
    kept = tuple(obj for i, obj in enumerate(plan.objects) if i not in view.refused)
    return attrs.evolve(plan, objects=kept), unseen


async def _scrubber_of(event: Event) -> Scrubber:
    """The Secrets' values read from the raw manifests (in a worker thread: it parses YAML)."""
    try:
        _, scrub = await trio.to_thread.run_sync(
            redact_manifests, event.payload.manifests, abandon_on_cancel=True
        )
    except Exception:
        return Scrubber()
    return scrub
