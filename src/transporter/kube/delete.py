"""Deleting the objects of a plan, in reverse plan order (custom objects before their CRDs)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import trio

from transporter.kube.discovery import Discovery
from transporter.kube.errors import KubeNotFound, KubeRejected
from transporter.kube.fingerprint import CHANGED, NOT_PLANNED, fingerprint
from transporter.kube.plan import Plan, PlannedObject
from transporter.kube.transport import Transport
from transporter.kube.validate import unknown_kind
from transporter.protocol.model import ABSENT, ResourceResult, ResourceStatus, object_key

DELETE_OPTIONS = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
CONFLICT_TRIES: Final = 5
"""Applying a plan's delete: deletes tried while the object keeps being written between our
read and our delete (a controller's status updates), each after a fresh read and check."""


def _pending_finalizers(answer: Any) -> bool:
    """Whether the server answered with the object itself, kept until its finalizers are done."""
    if not isinstance(answer, dict) or answer.get("kind") == "Status":
        return False
    metadata = answer.get("metadata")
    return isinstance(metadata, dict) and bool(metadata.get("finalizers"))


async def _delete_checked(
    transport: Transport,
    obj: PlannedObject,
    path: str,
    expected: str,
    headers: Mapping[str, str] | None,
) -> Any:
    """Applying a plan's delete: delete only while the object is as the plan saw it, and only
    the version read (a precondition: a write since makes it a 409 Conflict, then read and
    check again). Returns the server's answer, or the result when nothing was deleted."""
    for attempt in range(1, CONFLICT_TRIES + 1):
        try:
            before: dict[str, Any] | None = await transport.get(path, headers)
        except KubeNotFound:
            before = None
        found = await trio.to_thread.run_sync(fingerprint, before, None, abandon_on_cancel=True)
        if found != expected:
            return obj.result(ResourceStatus.DRIFTED, CHANGED)
        if before is None:
            return obj.result(ResourceStatus.NOT_FOUND)
        metadata = before.get("metadata")
        version = metadata.get("resourceVersion") if isinstance(metadata, dict) else None
        options = {**DELETE_OPTIONS, "preconditions": {"resourceVersion": version}}
        try:
            return await transport.request("DELETE", path, body=options, headers=headers)
        except KubeRejected as exc:
            if exc.code != 409 or attempt == CONFLICT_TRIES:
                raise
    raise AssertionError("unreachable: the last try returns or raises")


async def _delete_one(
    transport: Transport,
    discovery: Discovery,
    obj: PlannedObject,
    headers: Mapping[str, str] | None,
    expect: Mapping[str, str] | None,
) -> ResourceResult:
    expected = None
    if expect is not None:
        expected = expect.get(object_key(obj.api_version, obj.kind, obj.namespace, obj.name))
        if expected is None:
            return obj.result(ResourceStatus.DRIFTED, NOT_PLANNED)
    try:
        resource = obj.resource or await discovery.resolve(obj.api_version, obj.kind)
        if resource is None:  # its CRD is not installed, so no such object can exist
            if expected not in (None, ABSENT):
                return obj.result(ResourceStatus.DRIFTED, CHANGED)
            return obj.result(ResourceStatus.NOT_FOUND, unknown_kind(obj.api_version, obj.kind))
        path = resource.object_path(obj.name, obj.namespace)
        if expected is None:
            answer = await transport.request("DELETE", path, body=DELETE_OPTIONS, headers=headers)
        else:
            answer = await _delete_checked(transport, obj, path, expected, headers)
            if isinstance(answer, ResourceResult):
                return answer
    except KubeNotFound:
        return obj.result(ResourceStatus.NOT_FOUND)
    except KubeRejected as exc:
        return obj.result(ResourceStatus.FAILED, str(exc))
    if _pending_finalizers(answer):
        return obj.result(ResourceStatus.DELETED, "deletion started; waiting for finalizers")
    return obj.result(ResourceStatus.DELETED)


async def delete_plan(
    transport: Transport,
    discovery: Discovery,
    plan: Plan,
    headers: Mapping[str, str] | None = None,
    expect: Mapping[str, str] | None = None,
) -> list[ResourceResult]:
    """One result per object, in the order deleted. Raises :class:`KubeUnavailable`.
    ``expect``: applying a plan, its fingerprint of each object (by :func:`object_key`); an
    object not as the plan saw it, or not in it, is not deleted (``drifted``)."""
    discovery.begin()
    return [
        await _delete_one(transport, discovery, obj, headers, expect)
        for obj in reversed(plan.objects)
    ]
