"""Objects and cluster views for the agent's policy tests: planned objects as validating
would give them (ConfigMaps, namespaces, roles, bindings, webhooks, Deployments) and views in
which a ServiceAccount is bound to a role."""

from __future__ import annotations

from typing import Any

from transporter.agent.policy import ClusterView, Policy
from transporter.kube import PlannedObject

RBAC = "rbac.authorization.k8s.io/v1"


def obj(
    api_version: str, kind: str, name: str, namespace: str | None = None, **extra: Any
) -> PlannedObject:
    metadata = {"name": name} | ({"namespace": namespace} if namespace else {})
    body = {"apiVersion": api_version, "kind": kind, "metadata": metadata, **extra}
    return PlannedObject(api_version, kind, name, namespace, namespace is not None, body)


def configmap(name: str = "cm", namespace: str = "default") -> PlannedObject:
    return obj("v1", "ConfigMap", name, namespace)


def namespace(name: str) -> PlannedObject:
    return obj("v1", "Namespace", name)


def role(name: str, *verbs: str, namespace: str | None = None) -> PlannedObject:
    rules = [{"apiGroups": [""], "resources": ["configmaps"], "verbs": list(verbs)}]
    return obj(RBAC, "Role" if namespace else "ClusterRole", name, namespace, rules=rules)


def binding(name: str, ref_kind: str, ref_name: str, namespace: str | None = None) -> PlannedObject:
    kind = "RoleBinding" if namespace else "ClusterRoleBinding"
    return obj(
        RBAC,
        kind,
        name,
        namespace,
        roleRef={"apiGroup": "rbac.authorization.k8s.io", "kind": ref_kind, "name": ref_name},
        subjects=[{"kind": "User", "name": "someone", "apiGroup": "rbac.authorization.k8s.io"}],
    )


def webhooks(kind: str) -> PlannedObject:
    return obj("admissionregistration.k8s.io/v1", kind, "hooks", webhooks=[])


def rules_broken(
    policy: Policy, *objects: PlannedObject, delete: bool = False, view: ClusterView | None = None
) -> dict[str, list[str]]:
    """``name`` → the rules that object breaks, for the refused objects."""
    return {
        refusal.object.name: [reason.rule for reason in refusal.reasons]
        for refusal in policy.check(objects, view, delete=delete)
    }


def rule(
    *verbs: str, resources: tuple[str, ...] = ("configmaps",), group: str = ""
) -> dict[str, Any]:
    return {"apiGroups": [group], "resources": list(resources), "verbs": list(verbs)}


def ruled(name: str, *rules: dict[str, Any], namespace: str | None = None) -> PlannedObject:
    return obj(RBAC, "Role" if namespace else "ClusterRole", name, namespace, rules=list(rules))


def pod_deployment(name: str, namespace: str, account: str = "default") -> PlannedObject:
    template = {
        "metadata": {"labels": {"app": name}},
        "spec": {"serviceAccountName": account, "containers": [{"name": "main", "image": "x"}]},
    }
    return obj("apps/v1", "Deployment", name, namespace, spec={"template": template})


def account_bound_to(role: str, account: str, namespace: str) -> ClusterView:
    """A view in which a ClusterRoleBinding binds ServiceAccount ``account`` to ``role``."""
    binding = {
        "metadata": {"name": "b"},
        "roleRef": {"kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
    }
    return ClusterView(bindings={None: [binding], namespace: []})
