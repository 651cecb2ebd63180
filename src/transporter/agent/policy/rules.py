"""The agent's policy: what the control plane may ask this agent to do to its cluster.

Whoever controls the control plane (or its store) must not be able to own the clusters its
agents sit in. So every object of an event is judged before anything is applied or deleted, and
one refused object refuses the whole event. An object is judged as it will be, not as it was
sent: a manifest is a patch, so an apply is judged on the server-side dry run's answer (the
merge with what the cluster holds), a delete on the object as it is; and by what it can grant
(:mod:`.grants`, :mod:`.rbac`, the Pod Security Standards), not how it is spelled.

Judging takes rounds: :meth:`Policy.needs` says what to read next (dry runs, roles, bindings),
the agent reads it into a :class:`~.view.ClusterView`, until nothing more is needed; then
:meth:`Policy.check` gives the refusals. Both are pure.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any, Final

import attrs

from transporter.agent.policy.model import Reason, Refusal, group_of, kind_key, mapping
from transporter.agent.policy.podsecurity import TEMPLATE_PATHS, Level, check_pod, pod_template
from transporter.agent.policy.view import CLUSTER_BINDINGS, ClusterView, Needs
from transporter.kube import PlannedObject

if TYPE_CHECKING:  # what RBAC grants is judged with the first event (grants.py, rbac.py)
    from transporter.agent.policy.grants import Grants

KUBE_SYSTEM: Final = "kube-system"
_ADMISSION: Final = "admissionregistration.k8s.io"
_ADMISSION_KINDS: Final = {
    "MutatingWebhookConfiguration": (
        "mutating-webhooks",
        "an admission webhook sees and may change every request it matches",
    ),
    "ValidatingWebhookConfiguration": (
        "validating-webhooks",
        "an admission webhook sees and may refuse every request it matches",
    ),
    "ValidatingAdmissionPolicy": (
        "admission-policies",
        "an admission policy may refuse every request it matches",
    ),
    "ValidatingAdmissionPolicyBinding": (
        "admission-policies",
        "an admission policy binding puts a policy in force",
    ),
    "MutatingAdmissionPolicy": (
        "admission-policies",
        "an admission policy may change every request it matches",
    ),
    "MutatingAdmissionPolicyBinding": (
        "admission-policies",
        "an admission policy binding puts a policy in force",
    ),
}
_CRD = ("apiextensions.k8s.io", "CustomResourceDefinition")
_APISERVICE = ("apiregistration.k8s.io", "APIService")
_SA_TOKEN = "kubernetes.io/service-account-token"  # noqa: S105 - a type, not a secret


def _is_namespace(obj: PlannedObject) -> bool:
    return obj.kind == "Namespace" and group_of(obj.api_version) == ""


def _gk(obj: PlannedObject) -> tuple[str, str]:
    return group_of(obj.api_version), obj.kind


def _judged_by_content(obj: PlannedObject) -> bool:
    """Whether a verdict on ``obj`` depends on more than its kind, namespace and name."""
    from transporter.agent.policy.grants import is_rbac

    group, kind = _gk(obj)
    if is_rbac(obj, ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")):
        return True
    if (group, kind) == _CRD or (group, kind) in (("", "Secret"), ("", "PersistentVolume")):
        return True
    return (group, kind) in TEMPLATE_PATHS  # judged merged even when the patch has no template


@attrs.frozen(kw_only=True)
class Policy:
    """What the control plane may ask this agent to do. See the module's docstring."""

    kinds: tuple[str, ...] = ("*",)
    """``GROUP/KIND`` glob patterns (``apps/*``, ``core/ConfigMap``); ``*`` alone is every kind."""
    namespaces: tuple[str, ...] = ("*",)
    """Glob patterns of namespaces. A Namespace object is checked by its own name."""
    cluster_scoped: bool = True
    """Whether cluster-scoped objects other than Namespaces (ClusterRoles, CRDs…) may be touched."""
    allow: frozenset[str] = frozenset()
    """The dangerous defaults this policy allows: names from :data:`~.model.ALLOWANCES`."""
    pod_security: Level = Level.BASELINE
    """The Pod Security Standard every pod an event runs must meet."""
    state_namespace: str | None = None
    """The agent's own namespace (:mod:`transporter.agent.journal`): no event touches it."""
    source: str = "the default policy"
    """Where the policy came from, for logs."""

    def summary(self) -> str:
        """One line for the agent's start-up log."""
        allowed = ", ".join(sorted(self.allow)) or "none of the dangerous defaults"
        return (
            f"{self.source}: kinds {', '.join(self.kinds)}; namespaces {', '.join(self.namespaces)}"
            f"; cluster-scoped {'yes' if self.cluster_scoped else 'no'}; pod security"
            f" {self.pod_security.value}; allows {allowed}"
        )

    # --- what to read ----------------------------------------------------------------------

    def needs(
        self, objects: Sequence[PlannedObject], view: ClusterView, *, delete: bool = False
    ) -> Needs:
        """What the verdict depends on that ``view`` does not hold yet (empty: check now)."""
        from transporter.agent.policy.grants import Grants, is_rbac, role_key, role_ref

        merge = frozenset(i for i, obj in enumerate(objects) if delete or _judged_by_content(obj))
        wanted = view.missing(Needs(merge=merge))
        if wanted or delete:
            return wanted
        grants = Grants(objects, view)
        roles: set[Any] = set()
        namespaces: set[str | None] = set()
        aggregators = False
        for index, obj in enumerate(objects):
            body = grants.body(index, obj)
            if is_rbac(obj, ("RoleBinding", "ClusterRoleBinding")):
                ref = role_ref(body, obj.namespace)
                if ref is not None and ref not in grants.event_roles:
                    roles.add(ref)
            elif obj.kind == "ClusterRole" and role_key(obj) is not None:
                aggregators = True
            if obj.namespace is not None and (
                pod_template(*_gk(obj), body) is not None or role_key(obj) is not None
            ):
                namespaces |= {CLUSTER_BINDINGS, obj.namespace}
                if {CLUSTER_BINDINGS, obj.namespace} <= view.bindings.keys():
                    roles |= grants.roles_to_read(obj.namespace)
        return view.missing(
            Needs(roles=frozenset(roles), bindings=frozenset(namespaces), aggregators=aggregators)
        )

    # --- the verdict ------------------------------------------------------------------------

    def check(
        self,
        objects: Sequence[PlannedObject],
        view: ClusterView | None = None,
        *,
        delete: bool = False,
    ) -> list[Refusal]:
        """The objects this policy refuses, in the order given; empty when all may proceed."""
        from transporter.agent.policy.grants import Grants

        view = view if view is not None else ClusterView()
        grants = Grants(objects, view, apply=not delete)
        refusals = []
        for index, obj in enumerate(objects):
            reasons = [*self._identity(obj)]
            if delete:
                reasons += self._delete(obj, view.merged.get(index))
            else:
                reasons += self._content(obj, grants.body(index, obj), grants)
            unique = tuple(dict.fromkeys(r for r in reasons if r.rule not in self.allow))
            if unique:
                refusals.append(Refusal(obj, unique))
        return refusals

    def _identity(self, obj: PlannedObject) -> Iterator[Reason]:
        kind = kind_key(obj)
        if not any(fnmatchcase(kind, pattern) for pattern in self.kinds):
            yield Reason("kinds", f"kind {kind} is not among the policy's kinds")
        namespace = obj.name if _is_namespace(obj) else obj.namespace
        if namespace is None:
            if not self.cluster_scoped:
                yield Reason("clusterScoped", "cluster-scoped, and the policy allows none")
        elif not any(fnmatchcase(namespace, pattern) for pattern in self.namespaces):
            yield Reason(
                "namespaces", f"namespace {namespace} is not among the policy's namespaces"
            )
        where = "is the namespace" if _is_namespace(obj) else "in the namespace"
        if namespace == KUBE_SYSTEM:
            yield Reason(KUBE_SYSTEM, f"{where} {KUBE_SYSTEM}")
        if namespace is not None and namespace == self.state_namespace:
            yield Reason(
                "agent-namespace", f"{where} {namespace}, where this agent keeps what it ran"
            )

    def _content(
        self, obj: PlannedObject, body: Mapping[str, Any], grants: Grants
    ) -> Iterator[Reason]:
        from transporter.agent.policy.grants import is_rbac

        group, kind = _gk(obj)
        if group == _ADMISSION and kind in _ADMISSION_KINDS:
            yield Reason(*_ADMISSION_KINDS[kind])
        elif (group, kind) == _APISERVICE:
            yield Reason(
                "apiservices", "an APIService hands part of the Kubernetes API to another server"
            )
        elif (group, kind) == _CRD:
            conversion = mapping(mapping(body.get("spec")).get("conversion"))
            if conversion.get("strategy") == "Webhook":
                yield Reason(
                    "crd-conversion-webhooks",
                    "its conversion webhook sees and rewrites every object of its kind",
                )
        elif (group, kind) == ("", "Secret") and body.get("type") == _SA_TOKEN:
            yield Reason("service-account-tokens", "holds a token of the ServiceAccount it names")
        elif (group, kind) == ("", "PersistentVolume"):
            host_path = mapping(body.get("spec")).get("hostPath") is not None
            if host_path and self.pod_security is not Level.PRIVILEGED:
                yield Reason("podSecurity", "a hostPath PersistentVolume reaches the node's files")
        elif is_rbac(obj, ("Role", "ClusterRole")):
            yield from grants.role_reasons(obj, body)
        elif is_rbac(obj, ("RoleBinding", "ClusterRoleBinding")):
            yield from grants.binding_reasons(obj, body)
        yield from self._pods(obj, body, grants)

    def _pods(
        self, obj: PlannedObject, body: Mapping[str, Any], grants: Grants
    ) -> Iterator[Reason]:
        template = pod_template(*_gk(obj), body)
        if template is None:
            return
        metadata, spec = template
        violations = check_pod(metadata, spec, self.pod_security)
        if violations:
            yield Reason(
                "podSecurity",
                f'violates the Pod Security Standard "{self.pod_security.value}": '
                + ", ".join(str(v) for v in violations),
            )
        if obj.namespace is not None:
            account = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
            yield from grants.account_reasons(obj.namespace, str(account))

    def _delete(self, obj: PlannedObject, existing: Mapping[str, Any] | None) -> Iterator[Reason]:
        from transporter.agent.policy.grants import is_builtin, is_rbac

        group, kind = _gk(obj)
        if is_rbac(obj, ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")):
            yield Reason("delete-rbac", "deleting RBAC objects takes power from who holds it")
        elif group == _ADMISSION and kind in _ADMISSION_KINDS:
            yield Reason("delete-admission", "deleting admission configuration lifts its checks")
        elif (group, kind) == _CRD:
            yield Reason("delete-crds", "deleting a CRD deletes every object of its kind")
        elif (group, kind) == _APISERVICE:
            yield Reason("delete-apiservices", "deleting an APIService takes part of the API away")
        if is_builtin(obj.name, existing or obj.body):
            yield Reason("delete-system", "it is Kubernetes' own (system:* or rbac-defaults)")


DEFAULT_POLICY: Final = Policy()
"""Without a policy file: anything may be touched except the dangerous defaults."""
