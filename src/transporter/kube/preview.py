"""A plan (``action: plan``): what applying (or deleting) each object would do, and nothing
written. Each object is read as it is (GET) and, for an apply, applied by server-side dry run
(``dryRun=All``, the same field manager and ``force`` as the real apply, so the same merge,
defaulting and admission) and the two compared:

- absent → ``would_create``; the dry run's answer equal to the live object in content
  (:func:`~transporter.kube.fingerprint.content`: not in status, resourceVersion, managedFields,
  generation or timestamps) → ``unchanged``; else ``would_change`` with the fields
  (:mod:`~transporter.kube.diff`);
- the dry run refused → ``failed`` with the API server's message;
- a delete: ``would_delete`` when the object exists, ``not_found`` when not.

Every result carries the live object's :func:`~transporter.kube.fingerprint.fingerprint`
(``absent``), which applying the plan expects to find again.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs
import trio

from transporter.kube.diff import diff
from transporter.kube.errors import KubeNotFound, KubeRejected
from transporter.kube.fingerprint import content, fingerprint
from transporter.kube.inspect import Seen, dry_run_apply
from transporter.kube.plan import PlannedObject
from transporter.kube.transport import Transport
from transporter.protocol.model import ABSENT, ResourceResult, ResourceStatus

AT_ONCE: Final = 4
"""Objects read and dry-run at once (the transport has as many worker threads)."""
COMPARING: Final = 2
"""Comparisons at once, in worker threads (an object may be a few MB of JSON)."""


async def live(
    transport: Transport, obj: PlannedObject, headers: Mapping[str, str] | None = None
) -> dict[str, Any] | None:
    """The object as it is now; ``None`` when there is none (nor its kind yet). Raises
    :class:`KubeRejected` when the API server will not show it."""
    if obj.resource is None:  # its kind comes with a CRD of this plan: none exists yet
        return None
    try:
        return await transport.get(obj.resource.object_path(obj.name, obj.namespace), headers)
    except KubeNotFound:
        return None


def judge(
    obj: PlannedObject, before: Mapping[str, Any] | None, after: Mapping[str, Any]
) -> ResourceResult:
    """An apply's plan of one object, from the live object and the dry run's answer. Pure."""
    seen = fingerprint(before, obj.body)
    if before is None:
        return attrs.evolve(obj.result(ResourceStatus.WOULD_CREATE), fingerprint=seen)
    if content(before) == content(after):
        return attrs.evolve(obj.result(ResourceStatus.UNCHANGED), fingerprint=seen)
    found = diff(before, after)
    changed = len(found.changes) + found.more
    message = f"{changed} field{'s' if changed != 1 else ''} would change{found.note}"
    return attrs.evolve(
        obj.result(ResourceStatus.WOULD_CHANGE, message), diff=found.changes, fingerprint=seen
    )


@attrs.frozen
class _Read:
    """What was read of one object: the live object, and the dry run's answer (an apply's)."""

    obj: PlannedObject
    before: Mapping[str, Any] | None
    dry_run: Seen | None = None


def settle(read: _Read, *, delete: bool, coming: frozenset[str]) -> ResourceResult:
    """The result from what was read. Pure; in a worker thread (it hashes and compares)."""
    obj, before = read.obj, read.before
    seen = fingerprint(before, None if delete else obj.body)
    if delete:
        status = ResourceStatus.NOT_FOUND if before is None else ResourceStatus.WOULD_DELETE
        return attrs.evolve(obj.result(status), fingerprint=seen)
    if read.dry_run is None:  # its kind comes with a CRD of this plan: none exists yet
        why = f'its kind comes with CustomResourceDefinition "{obj.crd}" of this plan'
        return attrs.evolve(obj.result(ResourceStatus.WOULD_CREATE, why), fingerprint=ABSENT)
    if read.dry_run.refused is not None:
        message = f"the API server refused a dry run of it: {read.dry_run.refused}"
        return attrs.evolve(obj.result(ResourceStatus.FAILED, message), fingerprint=seen)
    if read.dry_run.body is None:  # no namespace: created by this plan, or an apply fails
        if obj.namespace in coming:
            return attrs.evolve(obj.result(ResourceStatus.WOULD_CREATE), fingerprint=ABSENT)
        message = f'namespace "{obj.namespace}" does not exist'
        return attrs.evolve(obj.result(ResourceStatus.FAILED, message), fingerprint=ABSENT)
    return judge(obj, before, read.dry_run.body)


class _Previewer:
    def __init__(
        self,
        transport: Transport,
        objects: Sequence[PlannedObject],
        delete: bool,
        headers: Mapping[str, str] | None,
    ) -> None:
        self.transport, self.delete, self.headers = transport, delete, headers
        self.coming = frozenset(
            o.name for o in objects if o.api_version == "v1" and o.kind == "Namespace"
        )
        self.reading = trio.CapacityLimiter(AT_ONCE)
        self.comparing = trio.CapacityLimiter(COMPARING)

    async def read(self, obj: PlannedObject) -> _Read:
        """Raises :class:`KubeRejected` when the live object cannot be read."""
        async with self.reading:
            before = await live(self.transport, obj, self.headers)
            if self.delete or obj.resource is None:
                return _Read(obj, before)
            return _Read(obj, before, await dry_run_apply(self.transport, obj, self.headers))

    async def one(self, obj: PlannedObject) -> ResourceResult:
        try:
            read = await self.read(obj)
        except KubeRejected as exc:
            return obj.result(ResourceStatus.FAILED, f"cannot read it: {exc}")
        async with self.comparing:
            return await trio.to_thread.run_sync(
                functools.partial(settle, read, delete=self.delete, coming=self.coming),
                abandon_on_cancel=True,
            )


async def preview_objects(
    transport: Transport,
    objects: Sequence[PlannedObject],
    *,
    delete: bool,
    headers: Mapping[str, str] | None = None,
) -> list[ResourceResult]:
    """One result per object, in order. Raises :class:`KubeUnavailable`; nothing is written."""
    previewer = _Previewer(transport, objects, delete, headers)
    results: list[ResourceResult | None] = [None] * len(objects)

    failures: list[Exception] = []

    async def fill(index: int) -> None:
        try:
            results[index] = await previewer.one(objects[index])
        except Exception as exc:  # the first failure ends the plan, as itself (no group)
            failures.append(exc)
            nursery.cancel_scope.cancel()

    async with trio.open_nursery() as nursery:
        for index in range(len(objects)):
            nursery.start_soon(fill, index)
    if failures:
        raise failures[0]
    return [r for r in results if r is not None]
