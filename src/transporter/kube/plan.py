"""What the phases pass along: the plan of objects to apply, and how each apply went."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from transporter.kube.errors import KubeError
from transporter.protocol.model import ResourceResult, ResourceStatus

if TYPE_CHECKING:  # discovery is imported with the first event (kube/target.py)
    from transporter.kube.discovery import ResourceInfo


@attrs.frozen
class PlannedObject:
    """One object to apply (or delete), placed: its namespace is final."""

    api_version: str
    kind: str
    name: str
    namespace: str | None
    """``default`` when a namespaced object gave none; ``None`` for cluster-scoped kinds."""
    namespaced: bool
    body: dict[str, Any] = attrs.field(repr=False, eq=False)
    """What is sent, ``metadata.namespace`` set as above. May hold secrets: never log it."""
    where: str = ""
    """Where it was submitted: ``manifest 1, document 2``."""
    resource: ResourceInfo | None = None
    """Where it lives in the API; ``None`` while its kind awaits the CRD named :attr:`crd`."""
    crd: str | None = None
    """The CustomResourceDefinition in the same plan that defines this kind, if unknown yet."""

    def result(self, status: ResourceStatus, message: str = "") -> ResourceResult:
        return ResourceResult(
            api_version=self.api_version,
            kind=self.kind,
            name=self.name,
            namespace=self.namespace,
            status=status,
            message=message,
        )


@attrs.frozen
class Plan:
    """The validated objects in the order they are applied, and what cannot be applied."""

    objects: tuple[PlannedObject, ...]
    """CustomResourceDefinitions first, then Namespaces, then the rest as submitted."""
    problems: tuple[ResourceResult, ...] = ()
    """Objects that cannot be applied (e.g. kinds unknown to the cluster), status ``failed``."""


@attrs.frozen
class Applied:
    """How applying one object went. ``error`` is set when it failed (then nothing else is)."""

    object: PlannedObject
    resource: ResourceInfo | None = None
    existed: bool = False
    """Whether the object was there before the apply."""
    version_before: str | None = None
    """``metadata.resourceVersion`` of the object before the apply: read, or left by our last
    apply (see :mod:`transporter.kube.apply`)."""
    version_after: str | None = None
    """``metadata.resourceVersion`` of the apply's answer, the object as stored; ``None``: the
    answer was not the object (verifying reads it back)."""
    changed: bool = True
    """Whether the object differs from before other than in resourceVersion, managedFields and
    status (see :mod:`transporter.kube.apply`)."""
    error: KubeError | None = attrs.field(default=None, eq=False)

    @property
    def ok(self) -> bool:
        return self.error is None
