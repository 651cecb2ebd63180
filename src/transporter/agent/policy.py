"""The agent's local policy: what the control plane may ask this agent to touch.

The control plane is trusted to route work, not to own the cluster: whoever controls it (or its
store) should not be able to make itself cluster-admin on every site. So each agent checks every
object of an event against a policy of its own before anything is applied or deleted, and
refuses the whole event if one object breaks a rule.

A policy has two parts:

- what may be touched at all: ``kinds`` (``GROUP/KIND`` patterns; the core group is ``core``),
  ``namespaces`` (glob patterns; a Namespace object counts as being in itself) and
  ``clusterScoped`` (whether cluster-scoped objects other than Namespaces may be touched);
- the dangerous defaults, each refused unless named under ``allow`` (see :data:`ALLOWANCES`):
  bindings to cluster-admin, ``*`` verbs in roles (and bindings to such roles in the same
  event), admission webhooks, APIServices and the kube-system namespace.

Without a policy file the agent uses :data:`DEFAULT_POLICY`: everything may be touched except
the dangerous defaults. Checking is pure (no I/O); :func:`load_policy` reads a policy file.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Final

import attrs
import yaml

from transporter.kube import PlannedObject
from transporter.protocol.model import ResourceResult, ResourceStatus

REFUSED: Final = "refused by agent policy: "
"""How every refusal message starts: the event's, and each refused resource's."""
NOT_APPLIED: Final = "not applied: another resource of this event was refused by agent policy"
"""The message of the event's other resources: none of them is applied either."""

ALLOWANCES: Final = {
    "cluster-admin": "RoleBindings and ClusterRoleBindings to the ClusterRole cluster-admin",
    "wildcard-verbs": (
        'Roles and ClusterRoles whose rules have verb "*", and bindings to such a role'
        " in the same event"
    ),
    "mutating-webhooks": "MutatingWebhookConfigurations",
    "validating-webhooks": "ValidatingWebhookConfigurations",
    "apiservices": "APIServices (apiregistration.k8s.io)",
    "kube-system": "anything in the namespace kube-system, and that Namespace itself",
}
"""What a policy file may allow under ``allow``; each is refused by default."""

KEYS: Final = ("version", "kinds", "namespaces", "clusterScoped", "allow")
"""The keys of a policy file; any other is an error."""

MAX_SHOWN = 5
"""Refused objects named in the event's message; all of them are in its resources."""

KUBE_SYSTEM = "kube-system"
_RBAC = "rbac.authorization.k8s.io"
_ADMISSION = "admissionregistration.k8s.io"
_DANGEROUS_KINDS: Final = {
    (_ADMISSION, "MutatingWebhookConfiguration"): (
        "mutating-webhooks",
        "an admission webhook sees and may change every request it matches",
    ),
    (_ADMISSION, "ValidatingWebhookConfiguration"): (
        "validating-webhooks",
        "an admission webhook sees and may refuse every request it matches",
    ),
    ("apiregistration.k8s.io", "APIService"): (
        "apiservices",
        "an APIService hands part of the Kubernetes API to another server",
    ),
}

RoleKey = tuple[str, str | None, str]
"""``(kind, namespace, name)`` of a Role (namespaced) or ClusterRole (namespace ``None``)."""


class PolicyError(ValueError):
    """A policy file we cannot use; the message names the file, the key and what is wrong."""


@attrs.frozen
class Reason:
    """One rule one object breaks. ``rule`` is what to change in the policy file: an allowance
    (:data:`ALLOWANCES`) or the key ``kinds``, ``namespaces`` or ``clusterScoped``."""

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


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0]


def kind_key(obj: PlannedObject) -> str:
    """``apps/Deployment``; ``core/ConfigMap`` for the core group: what ``kinds`` matches."""
    return f"{_group(obj.api_version) or 'core'}/{obj.kind}"


def _is_namespace(obj: PlannedObject) -> bool:
    return obj.kind == "Namespace" and _group(obj.api_version) == ""


def _grants_every_verb(role: PlannedObject) -> bool:
    rules = role.body.get("rules")
    if not isinstance(rules, list):
        return False
    for rule in rules:
        verbs = rule.get("verbs") if isinstance(rule, dict) else None
        if verbs == "*" or (isinstance(verbs, list) and "*" in verbs):
            return True
    return False


def _role_key(obj: PlannedObject) -> RoleKey | None:
    """The key of a Role or ClusterRole; ``None`` for any other object."""
    if _group(obj.api_version) != _RBAC or obj.kind not in ("Role", "ClusterRole"):
        return None
    return obj.kind, (obj.namespace if obj.kind == "Role" else None), obj.name


def _role_ref(binding: PlannedObject) -> RoleKey | None:
    """What a RoleBinding or ClusterRoleBinding binds; ``None`` for any other object."""
    if _group(binding.api_version) != _RBAC or binding.kind not in (
        "RoleBinding",
        "ClusterRoleBinding",
    ):
        return None
    ref = binding.body.get("roleRef")
    if not isinstance(ref, dict):
        return None
    kind, name = ref.get("kind"), ref.get("name")
    if not isinstance(kind, str) or not isinstance(name, str):
        return None
    # A RoleBinding's Role is in the binding's own namespace; ClusterRoles have none.
    return kind, (binding.namespace if kind == "Role" else None), name


@attrs.frozen(kw_only=True)
class Policy:
    """What the control plane may ask this agent to touch. See the module's docstring."""

    kinds: tuple[str, ...] = ("*",)
    """``GROUP/KIND`` glob patterns (``apps/*``, ``core/ConfigMap``); ``*`` alone is every kind."""
    namespaces: tuple[str, ...] = ("*",)
    """Glob patterns of namespaces. A Namespace object is checked by its own name."""
    cluster_scoped: bool = True
    """Whether cluster-scoped objects other than Namespaces (ClusterRoles, CRDs…) may be touched."""
    allow: frozenset[str] = frozenset()
    """The dangerous defaults this policy allows: names from :data:`ALLOWANCES`."""
    source: str = "the default policy"
    """Where the policy came from, for logs."""

    def summary(self) -> str:
        """One line for the agent's start-up log."""
        allowed = ", ".join(sorted(self.allow)) or "none of the dangerous defaults"
        return (
            f"{self.source}: kinds {', '.join(self.kinds)}; namespaces {', '.join(self.namespaces)}"
            f"; cluster-scoped {'yes' if self.cluster_scoped else 'no'}; allows {allowed}"
        )

    def check(self, objects: Sequence[PlannedObject]) -> list[Refusal]:
        """The objects this policy refuses, in the order given; empty when all may proceed.

        Checks all objects together: a binding is judged with the roles of the same event.
        """
        wildcard_roles: set[RoleKey] = set()
        for obj in objects:
            key = _role_key(obj)
            if key is not None and _grants_every_verb(obj):
                wildcard_roles.add(key)
        refusals = []
        for obj in objects:
            reasons = tuple(self._reasons(obj, wildcard_roles))
            if reasons:
                refusals.append(Refusal(obj, reasons))
        return refusals

    def _reasons(self, obj: PlannedObject, wildcard_roles: set[RoleKey]) -> Iterable[Reason]:
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
        if namespace == KUBE_SYSTEM and KUBE_SYSTEM not in self.allow:
            where = "is the namespace" if _is_namespace(obj) else "in the namespace"
            yield Reason(KUBE_SYSTEM, f"{where} {KUBE_SYSTEM}")
        dangerous = _DANGEROUS_KINDS.get((_group(obj.api_version), obj.kind))
        if dangerous is not None and dangerous[0] not in self.allow:
            yield Reason(*dangerous)
        if "wildcard-verbs" not in self.allow and _role_key(obj) in wildcard_roles:
            yield Reason("wildcard-verbs", 'grants verb "*"')
        ref = _role_ref(obj)
        if ref is not None:
            ref_kind, _, ref_name = ref
            admin = (ref_kind, ref_name) == ("ClusterRole", "cluster-admin")
            if admin and "cluster-admin" not in self.allow:
                yield Reason("cluster-admin", "binds ClusterRole cluster-admin")
            if ref in wildcard_roles and "wildcard-verbs" not in self.allow:
                yield Reason(
                    "wildcard-verbs", f'binds {ref_kind} {ref_name}, which grants verb "*"'
                )


DEFAULT_POLICY: Final = Policy()
"""Without a policy file: anything may be touched except the dangerous defaults."""


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


# --- the policy file ---------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses duplicate keys (which would silently override)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, Hashable):
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r}", key_node.start_mark
                    )
                seen.add(key)
        return super().construct_mapping(node, deep)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """One line: the problem and where it is."""
    problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
    mark = getattr(exc, "problem_mark", None)
    line, column = getattr(mark, "line", None), getattr(mark, "column", None)
    if isinstance(line, int) and isinstance(column, int):
        problem += f" at line {line + 1}, column {column + 1}"
    return f"not valid YAML: {problem}"


def _patterns(
    value: Any, key: str, check: Callable[[str, str], None] | None = None
) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise PolicyError(f"{key} must be a non-empty list of patterns")
    patterns = []
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item.strip() or item != item.strip():
            raise PolicyError(f"{key}[{index}]: {item!r} is not a pattern (a non-empty string)")
        if check is not None:
            check(item, f"{key}[{index}]")
        patterns.append(item)
    return tuple(patterns)


def _check_kind_pattern(pattern: str, where: str) -> None:
    if pattern == "*":
        return
    group, sep, kind = pattern.partition("/")
    if not sep or not group or not kind or "/" in kind:
        raise PolicyError(
            f"{where}: {pattern!r} is not GROUP/KIND (write core/ConfigMap for the core group,"
            " apps/* for a whole group, * for every kind)"
        )


def parse_policy(text: str, source: str = "policy") -> Policy:
    """A policy from the text of a policy file. Raises :class:`PolicyError` (one line)."""
    try:
        documents = list(yaml.load_all(text, Loader=_Loader))
    except yaml.YAMLError as exc:
        raise PolicyError(_yaml_problem(exc)) from None
    documents = [doc for doc in documents if doc is not None]
    if not documents:
        raise PolicyError("is empty (write {} for the default policy)")
    if len(documents) > 1:
        raise PolicyError("holds several YAML documents; a policy is one")
    data = documents[0]
    if not isinstance(data, dict):
        raise PolicyError(f"must be a mapping with the keys {', '.join(KEYS)}")
    for key in data:
        if key not in KEYS:
            raise PolicyError(f"unknown key {key!r} (known: {', '.join(KEYS)})")
    version = data.get("version", 1)
    if type(version) is not int or version != 1:
        raise PolicyError(f"version: {version!r} is not supported (only 1)")
    cluster_scoped = data.get("clusterScoped", True)
    if not isinstance(cluster_scoped, bool):
        raise PolicyError(f"clusterScoped: {cluster_scoped!r} is not true or false")
    allow = data.get("allow", [])
    if not isinstance(allow, list):
        raise PolicyError(f"allow must be a list of: {', '.join(ALLOWANCES)}")
    for index, name in enumerate(allow):
        if not isinstance(name, str) or name not in ALLOWANCES:
            raise PolicyError(
                f"allow[{index}]: unknown allowance {name!r} (known: {', '.join(ALLOWANCES)})"
            )
    return Policy(
        kinds=_patterns(data.get("kinds", ["*"]), "kinds", _check_kind_pattern),
        namespaces=_patterns(data.get("namespaces", ["*"]), "namespaces"),
        cluster_scoped=cluster_scoped,
        allow=frozenset(allow),
        source=source,
    )


def load_policy(path: Path) -> Policy:
    """Read and parse a policy file. Raises :class:`PolicyError` naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"policy file {path}: cannot read it: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise PolicyError(f"policy file {path}: is not UTF-8 text") from None
    try:
        return parse_policy(text, source=f"policy file {path}")
    except PolicyError as exc:
        raise PolicyError(f"policy file {path}: {exc}") from None
