"""What an object of an apply can grant once it is merged with what the cluster holds: roles by
their rules, bindings by the role they bind, ServiceAccounts by every binding that names them.
Pure: everything read from the cluster comes in a :class:`ClusterView`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

from transporter.agent.policy import rbac
from transporter.agent.policy.model import Reason, labels_of, mapping
from transporter.agent.policy.view import CLUSTER_BINDINGS, ClusterView, RoleKey
from transporter.kube import PlannedObject

BUILTIN_ROLES: Final = frozenset({"cluster-admin", "admin", "edit", "view"})
BOOTSTRAP_LABEL: Final = ("kubernetes.io/bootstrapping", "rbac-defaults")
AGGREGATE_LABEL_PREFIX: Final = "rbac.authorization.k8s.io/aggregate-to-"
_BINDINGS: Final = ("RoleBinding", "ClusterRoleBinding")
_ROLES: Final = ("Role", "ClusterRole")
_ALL: Final = "system:serviceaccounts"
"""The group of every ServiceAccount (and ``…:NAMESPACE`` of those of a namespace)."""


def is_rbac(obj: PlannedObject, kinds: Sequence[str]) -> bool:
    return obj.api_version.startswith(rbac.RBAC_GROUP + "/") and obj.kind in kinds


def role_key(obj: PlannedObject) -> RoleKey | None:
    """The key of a Role or ClusterRole; ``None`` for any other object."""
    if not is_rbac(obj, _ROLES):
        return None
    return obj.kind, (obj.namespace if obj.kind == "Role" else None), obj.name


def role_ref(binding: Mapping[str, Any], namespace: str | None) -> RoleKey | None:
    """What a binding binds: a RoleBinding's Role is in the binding's own namespace."""
    ref = mapping(binding.get("roleRef"))
    kind, name = ref.get("kind"), ref.get("name")
    if kind not in _ROLES or not isinstance(name, str):
        return None
    return kind, (namespace if kind == "Role" else None), name


def is_builtin(name: str, body: Mapping[str, Any]) -> bool:
    """Kubernetes' own roles and bindings, by name or by the label its RBAC bootstrap sets."""
    key, value = BOOTSTRAP_LABEL
    return name.startswith("system:") or labels_of(body).get(key) == value


class Grants:
    """The judge of one event's objects, with what the cluster said about them."""

    def __init__(
        self, objects: Sequence[PlannedObject], view: ClusterView, *, apply: bool = True
    ) -> None:
        self.view = view
        self.event_roles: dict[RoleKey, Mapping[str, Any]] = {}
        if apply:
            for index, obj in enumerate(objects):
                key = role_key(obj)
                if key is not None:
                    self.event_roles[key] = self.body(index, obj)

    def body(self, index: int, obj: PlannedObject) -> Mapping[str, Any]:
        """The object as it will be: merged by the dry run, else as sent."""
        merged = self.view.merged.get(index)
        return merged if merged is not None else obj.body

    def role(self, key: RoleKey) -> Mapping[str, Any] | None:
        """A role as it will be: this event's, else the cluster's (``None``: neither)."""
        return self.event_roles.get(key) or self.view.roles.get(key)

    # --- roles ------------------------------------------------------------------------------

    def role_reasons(self, obj: PlannedObject, body: Mapping[str, Any]) -> Iterator[Reason]:
        if obj.name in BUILTIN_ROLES or is_builtin(obj.name, body):
            yield Reason("builtin-roles", f"changes the built-in {obj.kind} {obj.name}")
        scope = rbac.CLUSTER if obj.kind == "ClusterRole" else (obj.namespace or "")
        yield from rbac.dangers(body, scope)
        if obj.kind == "ClusterRole":
            yield from self._aggregation(body)
        elif obj.namespace is not None and (how := rbac.reaches_service_accounts(body)):
            for account, reasons in self.powerful_accounts(obj.namespace).items():
                yield Reason(
                    "powerful-service-accounts",
                    f"{how} in namespace {obj.namespace}, so acts as its {account}, and a"
                    f" binding of it {reasons[0].text}",
                )
                break

    def _aggregation(self, body: Mapping[str, Any]) -> Iterator[Reason]:
        if "aggregationRule" in body and body["aggregationRule"] is not None:
            yield Reason("aggregation", "aggregates the rules of other ClusterRoles")
        labels = labels_of(body)
        fed = sorted(
            {
                key.removeprefix(AGGREGATE_LABEL_PREFIX)
                for key, value in labels.items()
                if key.startswith(AGGREGATE_LABEL_PREFIX) and value == "true"
            }
            | {
                name
                for name, selector in self.view.aggregators or ()
                if labels and rbac.selector_matches(selector, labels)
            }
        )
        if fed:
            yield Reason("aggregation", f"feeds its rules into ClusterRole {', '.join(fed)}")

    # --- bindings ---------------------------------------------------------------------------

    def binding_reasons(self, obj: PlannedObject, body: Mapping[str, Any]) -> Iterator[Reason]:
        if is_builtin(obj.name, body):
            yield Reason("builtin-roles", f"changes the built-in {obj.kind} {obj.name}")
        ref = role_ref(body, obj.namespace)
        if ref is not None:
            scope = rbac.CLUSTER if obj.kind == "ClusterRoleBinding" else (obj.namespace or "")
            yield from self.bound(ref, scope)

    def bound(self, ref: RoleKey, scope: str) -> Iterator[Reason]:
        """What binding ``ref`` in ``scope`` grants that is dangerous."""
        kind, _, name = ref
        where = f"binds {kind} {name}"
        # A built-in role is refused by its name alone: its allowance accepts it, whatever its
        # rules grant (they are the cluster's, and change with its version).
        if kind == "ClusterRole" and name == "cluster-admin":
            yield Reason("cluster-admin", f"{where}")
            return
        if name.startswith("system:") or (kind == "ClusterRole" and name in ("admin", "edit")):
            yield Reason("builtin-roles", f"{where}, a built-in role")
            return
        role = self.role(ref)
        for reason in rbac.dangers(role, scope) if role is not None else ():
            yield Reason(reason.rule, f"{where}, which {reason.text}")

    # --- ServiceAccounts --------------------------------------------------------------------

    def bindings_of(self, namespace: str) -> Iterator[tuple[Mapping[str, Any], str]]:
        """Every binding that may name an account of ``namespace``, with its scope."""
        for binding in self.view.bindings.get(CLUSTER_BINDINGS, ()):
            yield binding, rbac.CLUSTER
        for binding in self.view.bindings.get(namespace, ()):
            yield binding, namespace

    def powerful_accounts(self, namespace: str) -> dict[str, list[Reason]]:
        """ServiceAccounts of ``namespace`` (and the groups all of them are in) that hold a
        dangerous power: ``ServiceAccount web`` → why."""
        found: dict[str, list[Reason]] = {}
        for binding, scope in self.bindings_of(namespace):
            ref = role_ref(binding, None if scope == rbac.CLUSTER else scope)
            if ref is None:
                continue
            for who in accounts_named(binding, namespace):
                # What the role can do decides; a built-in name alone (system:auth-delegator,
                # bound to many accounts) does not make an account powerful.
                reasons = [r for r in self.bound(ref, scope) if r.rule != "builtin-roles"]
                if reasons:
                    found.setdefault(who, []).extend(reasons)
        return found

    def account_reasons(self, namespace: str, account: str) -> Iterator[Reason]:
        """Why running as ServiceAccount ``account`` of ``namespace`` is dangerous."""
        powers = self.powerful_accounts(namespace)
        groups = (f"{_ALL}:{namespace}", _ALL)
        for who in (f"ServiceAccount {account}", *(f"group {g}" for g in groups)):
            for reason in powers.get(who, ()):
                yield Reason(
                    "powerful-service-accounts",
                    f"runs as ServiceAccount {account}, and a binding of {who} {reason.text}",
                )

    def roles_to_read(self, namespace: str) -> set[RoleKey]:
        """The roles bound to accounts of ``namespace`` that neither the event nor the view
        holds yet."""
        wanted = set()
        for binding, scope in self.bindings_of(namespace):
            ref = role_ref(binding, None if scope == rbac.CLUSTER else scope)
            if ref is not None and accounts_named(binding, namespace):
                wanted.add(ref)
        return {key for key in wanted if key not in self.event_roles}


def accounts_named(binding: Mapping[str, Any], namespace: str) -> list[str]:
    """Which accounts of ``namespace`` a binding's subjects name (a ServiceAccount, or a group
    every account of the namespace is in)."""
    named = []
    subjects = binding.get("subjects")
    for subject in subjects if isinstance(subjects, list) else ():
        subject = mapping(subject)
        kind, name = subject.get("kind"), subject.get("name")
        if not isinstance(name, str):
            continue
        if kind == "ServiceAccount" and subject.get("namespace") == namespace:
            named.append(f"ServiceAccount {name}")
        elif kind == "User" and name.startswith(f"system:serviceaccount:{namespace}:"):
            named.append(f"ServiceAccount {name.rpartition(':')[2]}")
        elif kind == "Group" and name in (
            _ALL,
            f"{_ALL}:{namespace}",
        ):
            named.append(f"group {name}")
    return named
