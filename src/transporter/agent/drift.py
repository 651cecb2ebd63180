"""Applying a plan (``payload.expect``): an object is touched only if it is still as the plan saw
it.

Before the policy's check, each object is read and its fingerprint
(:func:`~transporter.kube.fingerprint.fingerprint`) compared with the plan's for its key
(:func:`~transporter.protocol.model.object_key`). An object that changed since (or appeared, or
went), or that the plan does not list (it was refused or failed when planned), is left out:
``drifted``, and the event fails saying so (plan again). So the policy judges what will be
applied. The rest is applied as usual, each object checked once more as it is applied, and
applied only over the version read (:mod:`transporter.kube.apply`), so that an edit in between
is not overwritten either.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

import attrs
import trio

from transporter.kube import KubeTarget, Plan, PlannedObject
from transporter.kube.fingerprint import CHANGED, NOT_PLANNED, fingerprint
from transporter.protocol.model import ResourceResult, ResourceStatus, object_key

AT_ONCE: Final = 4
"""Objects read at once (the transport has as many worker threads)."""


def key_of(obj: PlannedObject) -> str:
    return object_key(obj.api_version, obj.kind, obj.namespace, obj.name)


async def _check(
    target: KubeTarget,
    obj: PlannedObject,
    expect: Mapping[str, str],
    headers: Mapping[str, str] | None,
) -> ResourceResult | None:
    """The object's result when it must not be touched; ``None`` when it is as planned."""
    expected = expect.get(key_of(obj))
    if expected is None:
        return obj.result(ResourceStatus.DRIFTED, NOT_PLANNED)
    seen = await target.current(obj, headers=headers)
    if seen.refused is not None:
        why = f"cannot read it to compare with the plan: {seen.refused}"
        return obj.result(ResourceStatus.FAILED, why)
    now = await trio.to_thread.run_sync(fingerprint, seen.body, abandon_on_cancel=True)
    if now != expected:
        return attrs.evolve(obj.result(ResourceStatus.DRIFTED, CHANGED), fingerprint=now)
    return None


async def hold_drifted(
    target: KubeTarget,
    plan: Plan,
    expect: Mapping[str, str],
    *,
    headers: Mapping[str, str] | None = None,
) -> tuple[Plan, list[ResourceResult]]:
    """The plan without the objects that drifted (or could not be read), and their results in
    plan order. Raises :class:`KubeUnavailable`."""
    limiter = trio.CapacityLimiter(AT_ONCE)
    held: dict[int, ResourceResult] = {}
    failures: list[Exception] = []

    async def check(index: int) -> None:
        try:
            async with limiter:
                found = await _check(target, plan.objects[index], expect, headers)
        except Exception as exc:  # the first failure ends the check, as itself (no group)
            failures.append(exc)
            nursery.cancel_scope.cancel()
            return
        if found is not None:
            held[index] = found

    async with trio.open_nursery() as nursery:
        for index in range(len(plan.objects)):
            nursery.start_soon(check, index)
    if failures:
        raise failures[0]
    kept = tuple(obj for i, obj in enumerate(plan.objects) if i not in held)
    return attrs.evolve(plan, objects=kept), [held[i] for i in sorted(held)]


def drift_message(results: Sequence[ResourceResult]) -> str | None:
    """``drifted: 2 of 5 objects: ConfigMap/a: changed on the cluster …``; ``None`` when none
    drifted."""
    drifted = [r for r in results if r.status is ResourceStatus.DRIFTED]
    if not drifted:
        return None
    first = drifted[0]
    where = f"{first.kind}/{first.name}"
    return (
        f"drifted: {len(drifted)} of {len(results)} objects not touched: {where}: {first.message}"
    )
