"""The words of the policy: refusals, their reasons, and the allowances a policy file may give."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs

from transporter.kube import PlannedObject
from transporter.protocol.model import ResourceResult, ResourceStatus

REFUSED: Final = "refused by agent policy: "
"""How every refusal message starts: the event's, and each refused resource's."""
NOT_APPLIED: Final = "not applied: another resource of this event was refused by agent policy"
"""The message of the event's other resources: none of them is applied either."""
MAX_SHOWN: Final = 5
"""Refused objects named in the event's message; all of them are in its resources."""

ALLOWANCES: Final = {
    "cluster-admin": "bindings to the ClusterRole cluster-admin",
    "builtin-roles": (
        "bindings to the built-in roles admin, edit and system:*, and changes to built-in"
        " roles and bindings"
    ),
    "wildcard-verbs": 'roles with verb "*", and bindings to them',
    "wildcard-resources": 'roles on every resource ("*"), and bindings to them',
    "rbac-writes": "roles that write RBAC objects or grant escalate or bind, and bindings to them",
    "impersonation": "roles that grant impersonate, and bindings to them",
    "secrets": "ClusterRoles that read Secrets (in every namespace), and bindings to them",
    "workloads-everywhere": (
        "ClusterRoles that run or enter workloads, or mint ServiceAccount tokens, in every"
        " namespace, and bindings to them"
    ),
    "node-access": (
        "ClusterRoles that reach nodes (nodes/proxy), create PersistentVolumes or approve"
        " certificates, and bindings to them"
    ),
    "admission-writes": (
        "ClusterRoles that write admission configuration, CRDs or APIServices, and bindings to them"
    ),
    "aggregation": "aggregating ClusterRoles, and ClusterRoles labelled to feed one",
    "powerful-service-accounts": (
        "workloads that run as a ServiceAccount holding any of these powers, and roles that"
        " reach such a ServiceAccount"
    ),
    "service-account-tokens": "Secrets of type kubernetes.io/service-account-token",
    "mutating-webhooks": "MutatingWebhookConfigurations",
    "validating-webhooks": "ValidatingWebhookConfigurations",
    "admission-policies": (
        "ValidatingAdmissionPolicies, MutatingAdmissionPolicies and their bindings"
    ),
    "crd-conversion-webhooks": "CustomResourceDefinitions with a conversion webhook",
    "apiservices": "APIServices (apiregistration.k8s.io)",
    "kube-system": "anything in the namespace kube-system, and that Namespace itself",
    "delete-rbac": "deleting Roles, ClusterRoles and their bindings",
    "delete-admission": "deleting admission webhooks, admission policies and their bindings",
    "delete-crds": "deleting CustomResourceDefinitions",
    "delete-apiservices": "deleting APIServices",
    "delete-system": (
        "deleting objects named system:* or labelled kubernetes.io/bootstrapping=rbac-defaults"
    ),
}
"""What a policy file may allow under ``allow``; each is refused by default."""


class PolicyError(ValueError):
    """A policy file we cannot use; the message names the file, the key and what is wrong."""


@attrs.frozen
class Reason:
    """One rule one object breaks. ``rule`` is what to change in the policy file: an allowance
    (:data:`ALLOWANCES`), ``podSecurity``, or the key ``kinds``, ``namespaces`` or
    ``clusterScoped``."""

    rule: str
    text: str

    def __str__(self) -> str:
        return f"{self.text} (rule {self.rule})"


@attrs.frozen
class Refusal:
    """An object the policy refuses, and every rule it breaks."""

    object: PlannedObject
    reasons: tuple[Reason, ...]

    @property
    def reason(self) -> str:
        return "; ".join(str(reason) for reason in self.reasons)

    @property
    def message(self) -> str:
        """The refused resource's message: ``refused by agent policy: <reason>``."""
        return REFUSED + self.reason

    def describe(self) -> str:
        """``ClusterRoleBinding ops: binds ClusterRole cluster-admin (rule cluster-admin)``."""
        obj = self.object
        where = f"{obj.namespace}/{obj.name}" if obj.namespace else obj.name
        return f"{obj.kind} {where}: {self.reason}"


def group_of(api_version: str) -> str:
    """``apps/v1`` → ``apps``; ``v1`` → ``""`` (the core group)."""
    return api_version.rpartition("/")[0]


def kind_key(obj: PlannedObject) -> str:
    """``apps/Deployment``; ``core/ConfigMap`` for the core group: what ``kinds`` matches."""
    return f"{group_of(obj.api_version) or 'core'}/{obj.kind}"


def mapping(value: Any) -> Mapping[str, Any]:
    """``value`` when it is a JSON object, else an empty one (hostile input has any shape)."""
    return value if isinstance(value, Mapping) else {}


def labels_of(body: Mapping[str, Any]) -> Mapping[str, Any]:
    return mapping(mapping(body.get("metadata")).get("labels"))


def refused_results(
    objects: Sequence[PlannedObject], refusals: Sequence[Refusal]
) -> list[ResourceResult]:
    """One ``failed`` result per object, in order: the refused ones say why, the others that
    they were not applied."""
    why = {id(refusal.object): refusal.message for refusal in refusals}
    return [obj.result(ResourceStatus.FAILED, why.get(id(obj), NOT_APPLIED)) for obj in objects]


def refusal_message(refusals: Sequence[Refusal]) -> str:
    """The event's message: ``refused by agent policy: <object>: <reason>; …``."""
    shown = "; ".join(refusal.describe() for refusal in refusals[:MAX_SHOWN])
    more = len(refusals) - MAX_SHOWN
    return REFUSED + shown + (f"; and {more} more" if more > 0 else "")
