"""The validating phase: parsed manifests into a :class:`Plan`, kinds resolved by discovery."""

from __future__ import annotations

from collections.abc import Sequence

from transporter.kube.crd import CrdKind, crd_kind, is_crd
from transporter.kube.discovery import Discovery, ResourceInfo
from transporter.kube.errors import KubeRejected
from transporter.kube.manifests import ManifestObject
from transporter.kube.plan import Plan, PlannedObject
from transporter.protocol.model import ResourceResult, ResourceStatus

DEFAULT_NAMESPACE = "default"


def unknown_kind(api_version: str, kind: str) -> str:
    return f'kind "{kind}" ({api_version}) is not known to the cluster'


def _problem(obj: ManifestObject, message: str) -> ResourceResult:
    return ResourceResult(
        api_version=obj.api_version,
        kind=obj.kind,
        name=obj.name,
        namespace=obj.namespace,
        status=ResourceStatus.FAILED,
        message=f"{message} ({obj.where})",
    )


def _place(
    obj: ManifestObject, namespaced: bool, resource: ResourceInfo | None, crd: str | None
) -> PlannedObject:
    """Final namespace: ``default`` if a namespaced object has none; none if cluster-scoped."""
    namespace = (obj.namespace or DEFAULT_NAMESPACE) if namespaced else None
    metadata = {k: v for k, v in obj.body["metadata"].items() if k != "namespace"}
    if namespace is not None:
        metadata["namespace"] = namespace
    return PlannedObject(
        api_version=obj.api_version,
        kind=obj.kind,
        name=obj.name,
        namespace=namespace,
        namespaced=namespaced,
        body={**obj.body, "metadata": metadata},
        where=obj.where,
        resource=resource,
        crd=crd,
    )


def _rank(obj: PlannedObject) -> int:
    if is_crd(obj.api_version, obj.kind):
        return 0
    if obj.kind == "Namespace" and obj.api_version == "v1":
        return 1
    return 2


def _crds_in(objects: Sequence[ManifestObject]) -> dict[tuple[str, str], CrdKind]:
    """``(group, kind)`` → the CRD of this plan that defines it."""
    found: dict[tuple[str, str], CrdKind] = {}
    for obj in objects:
        if is_crd(obj.api_version, obj.kind) and (defined := crd_kind(obj.body)) is not None:
            found[defined.group, defined.kind] = defined
    return found


async def make_plan(objects: Sequence[ManifestObject], discovery: Discovery) -> Plan:
    """Place parsed objects by what discovery says. Raises :class:`KubeUnavailable`."""
    crds = _crds_in(objects)
    discovery.begin()
    planned: list[PlannedObject] = []
    problems: list[ResourceResult] = []
    for obj in objects:
        try:
            resource = await discovery.resolve(obj.api_version, obj.kind)
        except KubeRejected as exc:
            problems.append(_problem(obj, f"discovery of {obj.api_version} refused: {exc}"))
            continue
        if resource is not None:
            planned.append(_place(obj, resource.namespaced, resource, None))
            continue
        defined = crds.get((obj.group, obj.kind))
        version = obj.api_version.rpartition("/")[2]
        if defined is None or version not in defined.versions:
            problems.append(_problem(obj, unknown_kind(obj.api_version, obj.kind)))
            continue
        planned.append(_place(obj, defined.namespaced, None, defined.name))
    planned.sort(key=_rank)  # stable: submitted order within each rank
    return Plan(tuple(planned), tuple(problems))
