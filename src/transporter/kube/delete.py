"""Deleting the objects of a plan, in reverse plan order (custom objects before their CRDs)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from transporter.kube.discovery import Discovery
from transporter.kube.errors import KubeNotFound, KubeRejected
from transporter.kube.plan import Plan, PlannedObject
from transporter.kube.transport import Transport
from transporter.kube.validate import unknown_kind
from transporter.protocol.model import ResourceResult, ResourceStatus

DELETE_OPTIONS = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}


def _pending_finalizers(answer: Any) -> bool:
    """Whether the server answered with the object itself, kept until its finalizers are done."""
    if not isinstance(answer, dict) or answer.get("kind") == "Status":
        return False
    metadata = answer.get("metadata")
    return isinstance(metadata, dict) and bool(metadata.get("finalizers"))


async def _delete_one(
    transport: Transport,
    discovery: Discovery,
    obj: PlannedObject,
    headers: Mapping[str, str] | None,
) -> ResourceResult:
    try:
        resource = obj.resource or await discovery.resolve(obj.api_version, obj.kind)
        if resource is None:  # its CRD is not installed, so no such object can exist
            return obj.result(ResourceStatus.NOT_FOUND, unknown_kind(obj.api_version, obj.kind))
        path = resource.object_path(obj.name, obj.namespace)
        answer = await transport.request("DELETE", path, body=DELETE_OPTIONS, headers=headers)
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
) -> list[ResourceResult]:
    """One result per object, in the order deleted. Raises :class:`KubeUnavailable`."""
    discovery.begin()
    return [await _delete_one(transport, discovery, obj, headers) for obj in reversed(plan.objects)]
