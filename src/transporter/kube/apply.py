"""The applying and verifying phases: server-side apply in plan order, then read back.

Each object is read (GET) before it is applied, so the verdict rests on what the server said:
absent before → ``created``; ``metadata.resourceVersion`` of the apply's answer equal to the one
before → ``unchanged`` (server-side apply of the same content writes nothing); a new
resourceVersion → ``updated``, unless the object the server returned differs from the one before
only in ``metadata.managedFields`` or ``status`` (then ``unchanged``). The server records field
ownership alone on the second apply of an object whose manifest sets no field besides its name
(a bare Namespace), and a controller may write status between our read and our apply; neither
is a change the apply made.

One object failing does not stop the others; :class:`KubeUnavailable` (after the transport's
bounded retries) does, because then nothing else would get through either.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import trio

from transporter.kube.crd import POLL_FIRST, POLL_MAX, CrdKind, crd_kind, is_crd, wait_established
from transporter.kube.discovery import Discovery, ResourceInfo
from transporter.kube.errors import (
    DependencyFailed,
    Drifted,
    KubeError,
    KubeNotFound,
    KubeNotReady,
    KubeRejected,
)
from transporter.kube.fingerprint import CHANGED, NOT_PLANNED, fingerprint
from transporter.kube.inspect import apply_query
from transporter.kube.manifests import api_version_of
from transporter.kube.plan import Applied, Plan, PlannedObject
from transporter.kube.transport import APPLY_PATCH, Transport
from transporter.kube.validate import unknown_kind
from transporter.protocol.model import ResourceResult, ResourceStatus, object_key


def _content(answer: dict[str, Any]) -> dict[str, Any]:
    """What an apply can change: the object without its version, field owners and status."""
    metadata = answer.get("metadata")
    kept = {k: v for k, v in answer.items() if k != "status"}
    if isinstance(metadata, dict):
        skip = ("resourceVersion", "managedFields")
        kept["metadata"] = {k: v for k, v in metadata.items() if k not in skip}
    return kept


def _resource_version(answer: dict[str, Any]) -> str | None:
    metadata = answer.get("metadata")
    version = metadata.get("resourceVersion") if isinstance(metadata, dict) else None
    return version if isinstance(version, str) else None


CONFLICT_TRIES: Final = 5
"""Applying a plan: applies tried while the object keeps being written between our read and
our apply (a controller's status updates), each after a fresh read and check."""


def _locked(body: dict[str, Any], before: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` that the API server applies only over the object as read (``before``): with
    its ``resourceVersion``, any write since makes the apply a 409 Conflict."""
    version = _resource_version(dict(before))
    if version is None:
        return body
    metadata = body.get("metadata")
    return {
        **body,
        "metadata": {
            **(metadata if isinstance(metadata, dict) else {}),
            "resourceVersion": version,
        },
    }


async def _drifted(
    before: Mapping[str, Any] | None, manifest: Mapping[str, Any], expected: str
) -> bool:
    found = await trio.to_thread.run_sync(fingerprint, before, manifest, abandon_on_cancel=True)
    return found != expected


async def _apply_one(
    transport: Transport,
    obj: PlannedObject,
    resource: ResourceInfo,
    headers: Mapping[str, str] | None,
    expected: str | None = None,
) -> Applied:
    """Read, then apply. ``expected``: a plan's fingerprint of the object; it is applied only
    while it is still so, and only over the version read (see :func:`_locked`).

    An object expected ``absent`` and still absent when read has no version to lock on: one
    created by someone else between that read and our apply (milliseconds) is applied over.
    Server-side apply has no "must not exist" precondition (a ``metadata.uid`` in the body is
    one for an existing object, but refuses the create), and creating it by POST first would
    record our fields as an update's, not an apply's, changing who owns them."""
    path = resource.object_path(obj.name, obj.namespace)
    for attempt in range(1, CONFLICT_TRIES + 1):
        try:
            try:
                before: dict[str, Any] | None = await transport.get(path, headers)
            except KubeNotFound:
                before = None
            if expected is not None and await _drifted(before, obj.body, expected):
                return Applied(obj, resource, error=Drifted(CHANGED))
            body = obj.body if expected is None or before is None else _locked(obj.body, before)
            answer = await transport.request(
                "PATCH",
                path,
                query=apply_query(),
                body=body,
                content_type=APPLY_PATCH,
                headers=headers,
            )
        except KubeRejected as exc:
            if expected is not None and exc.code == 409 and attempt < CONFLICT_TRIES:
                continue  # written since our read: read and check again
            return Applied(obj, resource, error=exc)
        after = answer if isinstance(answer, dict) else {}
        return Applied(
            obj,
            resource,
            existed=before is not None,
            version_before=_resource_version(before) if before is not None else None,
            version_after=_resource_version(after),
            changed=before is None or _content(before) != _content(after),
        )
    raise AssertionError("unreachable: the last try returns")


class _CrdTracker:
    """The CRDs of one plan as they are applied: established, or why not."""

    def __init__(self, discovery: Discovery, timeout: float) -> None:
        self._discovery = discovery
        self._timeout = timeout
        self._failed: dict[str, KubeError] = {}
        self._deadline: dict[str, float] = {}

    async def after_apply(self, transport: Transport, applied: Applied) -> Applied:
        """Wait until an applied CRD is Established, and make discovery ask about it afresh."""
        obj = applied.object
        if applied.error is None and applied.resource is not None:
            path = applied.resource.object_path(obj.name, None)
            try:
                await wait_established(transport, path, obj.name, self._timeout)
            except (KubeRejected, KubeNotReady) as exc:
                applied = Applied(obj, applied.resource, error=exc)
        if applied.error is not None:
            self._failed[obj.name] = applied.error
        defined = crd_kind(obj.body)
        if defined is not None:
            self._forget(defined)
        self._deadline[obj.name] = trio.current_time() + self._timeout
        return applied

    def _forget(self, defined: CrdKind) -> None:
        for version in defined.versions:
            self._discovery.forget(api_version_of(defined.group, version))

    async def resolve(self, obj: PlannedObject) -> ResourceInfo | KubeError:
        """Where an object of a kind from this plan's CRD lives, polling discovery briefly.

        The CRD is Established by now, but discovery may lag behind it for a moment.
        """
        crd = obj.crd or ""
        if crd in self._failed:
            return DependencyFailed(
                f'not applied: its CustomResourceDefinition "{crd}" failed: {self._failed[crd]}'
            )
        deadline = self._deadline.get(crd, trio.current_time())
        delay = POLL_FIRST
        while True:
            self._discovery.forget(obj.api_version)
            try:
                found = await self._discovery.resolve(obj.api_version, obj.kind)
            except KubeRejected as exc:
                return exc
            if found is not None:
                return found
            if trio.current_time() + delay > deadline:
                return DependencyFailed(
                    f"not applied: {unknown_kind(obj.api_version, obj.kind)}"
                    f' although CustomResourceDefinition "{crd}" was applied'
                )
            await trio.sleep(delay)
            delay = min(delay * 2, POLL_MAX)


async def apply_plan(
    transport: Transport,
    discovery: Discovery,
    plan: Plan,
    *,
    crd_timeout: float,
    headers: Mapping[str, str] | None = None,
    expect: Mapping[str, str] | None = None,
) -> list[Applied]:
    """``headers``: sent with each object's requests (impersonation). ``expect``: applying a
    plan, its fingerprint of each object (by :func:`object_key`); an object not as the plan saw
    it, or not in it, is not applied (:class:`Drifted`)."""
    crds = _CrdTracker(discovery, crd_timeout)
    results: list[Applied] = []
    for obj in plan.objects:
        resource = obj.resource
        if resource is None:
            found = await crds.resolve(obj)
            if isinstance(found, KubeError):
                results.append(Applied(obj, None, error=found))
                continue
            resource = found
        expected = None
        if expect is not None:
            expected = expect.get(object_key(obj.api_version, obj.kind, obj.namespace, obj.name))
            if expected is None:
                results.append(Applied(obj, resource, error=Drifted(NOT_PLANNED)))
                continue
        applied = await _apply_one(transport, obj, resource, headers, expected)
        if isinstance(applied.error, KubeNotFound):
            discovery.forget(obj.api_version)  # the kind may be gone: ask again next time
        if is_crd(obj.api_version, obj.kind):
            applied = await crds.after_apply(transport, applied)
        results.append(applied)
    return results


def _verdict(applied: Applied) -> ResourceStatus:
    if not applied.existed:
        return ResourceStatus.CREATED
    if applied.version_before is not None and applied.version_before == applied.version_after:
        return ResourceStatus.UNCHANGED
    if not applied.changed:  # only field ownership was written (see Applied.changed)
        return ResourceStatus.UNCHANGED
    return ResourceStatus.UPDATED


async def verify_applied(
    transport: Transport,
    applied: Sequence[Applied],
    headers: Mapping[str, str] | None = None,
) -> list[ResourceResult]:
    """Read back every object that was applied; one result per :class:`Applied`, in order."""
    results: list[ResourceResult] = []
    for one in applied:
        obj = one.object
        if isinstance(one.error, Drifted):
            results.append(obj.result(ResourceStatus.DRIFTED, str(one.error)))
            continue
        if one.error is not None or one.resource is None:
            results.append(obj.result(ResourceStatus.FAILED, str(one.error or "not applied")))
            continue
        try:
            await transport.get(one.resource.object_path(obj.name, obj.namespace), headers)
        except KubeNotFound:
            results.append(obj.result(ResourceStatus.FAILED, "applied, but gone when read back"))
            continue
        except KubeRejected as exc:
            results.append(obj.result(ResourceStatus.FAILED, f"cannot read it back: {exc}"))
            continue
        results.append(obj.result(_verdict(one)))
    return results
