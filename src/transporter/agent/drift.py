"""Applying a plan (``payload.expect``): an object is touched only if it is still as the plan saw
it.

Before the policy's check, each object is read and its fingerprint
(:func:`~transporter.kube.fingerprint.fingerprint`: an apply's covers what the manifest sets, a
delete's the whole object) compared with the plan's for its key
(:func:`~transporter.protocol.model.object_key`). An object that changed since (or appeared, or
went), or that the plan does not list (it was refused or failed when planned), is left out:
``drifted``, and the event fails saying so (plan again). An object the event names twice is
left out too (``failed``), as its plan did. So the policy judges what will be applied. The rest
is applied as usual, each object checked once more as it is applied, and applied only over the
version read (:mod:`transporter.kube.apply`), so that an edit in between is not overwritten
either.

An object that is not as the plan saw it but already is what this very apply (or delete) would
leave is not drifted: the delivery before this one was cut short (the agent killed mid-apply)
after it wrote that object. It is applied (``unchanged``) or found gone (``not_found``), checked
as it is applied against what was read here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs
import trio

from transporter.kube import KubeTarget, Plan, PlannedObject
from transporter.kube.fingerprint import CHANGED, NOT_PLANNED, fingerprint
from transporter.protocol.model import ResourceResult, ResourceStatus, object_key

AT_ONCE: Final = 4
"""Objects read at once (the transport has as many worker threads)."""


def key_of(obj: PlannedObject) -> str:
    return object_key(obj.api_version, obj.kind, obj.namespace, obj.name)


def repeated(objects: Sequence[PlannedObject]) -> dict[int, str]:
    """Index → why, for each object that an earlier one of the same event already names: one
    object cannot be planned (nor a plan of it applied) twice, its first change would make the
    second's look drifted."""
    first: dict[str, PlannedObject] = {}
    found: dict[int, str] = {}
    for index, obj in enumerate(objects):
        earlier = first.setdefault(key_of(obj), obj)
        if earlier is not obj:
            found[index] = f"the same object twice in this event ({earlier.where} and {obj.where})"
    return found


async def _already(
    target: KubeTarget,
    obj: PlannedObject,
    live: Mapping[str, Any] | None,
    now: str,
    *,
    delete: bool,
    headers: Mapping[str, str] | None,
) -> bool:
    """Whether the object already is what this very change would leave: a delivery of it cut
    short (the agent killed mid-apply) wrote it, or someone made it so. A delete's: gone; an
    apply's: the dry run of the manifest has the fingerprint the live object has."""
    if delete or live is None:
        return delete and live is None
    dry = await target.dry_run(obj, headers=headers)
    if dry.refused is not None or dry.body is None:
        return False
    would = await trio.to_thread.run_sync(fingerprint, dry.body, obj.body, abandon_on_cancel=True)
    return would == now


async def _check(
    target: KubeTarget,
    obj: PlannedObject,
    expect: Mapping[str, str],
    headers: Mapping[str, str] | None,
    *,
    delete: bool,
) -> ResourceResult | str:
    """The object's result when it must not be touched; else the fingerprint to expect as it
    is applied: the plan's, or the live one when it already is what the change would leave."""
    expected = expect.get(key_of(obj))
    if expected is None:
        return obj.result(ResourceStatus.DRIFTED, NOT_PLANNED)
    seen = await target.current(obj, headers=headers)
    if seen.refused is not None:
        why = f"cannot read it to compare with the plan: {seen.refused}"
        return obj.result(ResourceStatus.FAILED, why)
    manifest = None if delete else obj.body
    now = await trio.to_thread.run_sync(fingerprint, seen.body, manifest, abandon_on_cancel=True)
    if now == expected:
        return expected
    if await _already(target, obj, seen.body, now, delete=delete, headers=headers):
        return now
    return attrs.evolve(obj.result(ResourceStatus.DRIFTED, CHANGED), fingerprint=now)


async def hold_drifted(
    target: KubeTarget,
    plan: Plan,
    expect: Mapping[str, str],
    *,
    delete: bool = False,
    headers: Mapping[str, str] | None = None,
) -> tuple[Plan, list[ResourceResult], dict[str, str]]:
    """The plan without the objects that drifted, could not be read or come twice, their
    results in plan order, and the fingerprints to expect of the rest as they are applied.
    Raises :class:`KubeUnavailable`."""
    limiter = trio.CapacityLimiter(AT_ONCE)
    held: dict[int, ResourceResult] = {
        i: plan.objects[i].result(ResourceStatus.FAILED, why)
        for i, why in repeated(plan.objects).items()
    }
    expecting: dict[str, str] = {}
    failures: list[Exception] = []

    async def check(index: int) -> None:
        obj = plan.objects[index]
        try:
            async with limiter:
                found = await _check(target, obj, expect, headers, delete=delete)
        except Exception as exc:  # the first failure ends the check, as itself (no group)
            failures.append(exc)
            nursery.cancel_scope.cancel()
            return
        if isinstance(found, str):
            expecting[key_of(obj)] = found
        else:
            held[index] = found

    async with trio.open_nursery() as nursery:
        for index in range(len(plan.objects)):
            if index not in held:
                nursery.start_soon(check, index)
    if failures:
        raise failures[0]
    kept = tuple(obj for i, obj in enumerate(plan.objects) if i not in held)
    return attrs.evolve(plan, objects=kept), [held[i] for i in sorted(held)], expecting


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
