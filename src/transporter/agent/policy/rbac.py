"""What an RBAC role can grant, judged by its rules' meaning, never by how they are spelled.

A role is dangerous when a subject bound to it could gain power beyond what the role names:
cluster-admin-equivalent power through ``*``, ``escalate``, ``bind`` or ``impersonate``, writes
to RBAC or admission configuration, Secrets read everywhere, workloads run (or entered) in
every namespace, ``kube-system`` included, with whatever ServiceAccount lives there, or the
nodes themselves. Listing every verb is the same as ``*``: verbs are matched one by one.

``scope`` says where the rules apply: ``"cluster"`` for a ClusterRole (judged on its own, or
bound by a ClusterRoleBinding), a namespace name for a Role or a ClusterRole bound by a
RoleBinding. Powers that only matter everywhere (Secrets, workloads, nodes) are judged in the
cluster scope; in a namespace, reaching its ServiceAccounts is what matters (see
:func:`reaches_service_accounts`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

from transporter.agent.policy.model import Reason, mapping

RBAC_GROUP: Final = "rbac.authorization.k8s.io"
CLUSTER: Final = "cluster"

WRITE: Final = frozenset({"create", "update", "patch", "delete", "deletecollection"})
READ: Final = frozenset({"get", "list", "watch"})
_EVERY_VERB: Final = WRITE | READ | {"escalate", "bind", "impersonate", "approve", "sign", "proxy"}

_RBAC_KINDS: Final = ("roles", "rolebindings", "clusterroles", "clusterrolebindings")
_ROLE_KINDS: Final = ("roles", "clusterroles")
_IMPERSONABLE: Final = (
    ("", "users"),
    ("", "groups"),
    ("", "serviceaccounts"),
    ("authentication.k8s.io", "userextras"),
    ("authentication.k8s.io", "uids"),
)
_WORKLOADS: Final = (
    ("", "pods"),
    ("", "replicationcontrollers"),
    ("", "podtemplates"),
    ("apps", "deployments"),
    ("apps", "daemonsets"),
    ("apps", "statefulsets"),
    ("apps", "replicasets"),
    ("batch", "jobs"),
    ("batch", "cronjobs"),
)
_ENTER: Final = ("pods/exec", "pods/attach", "pods/portforward", "pods/ephemeralcontainers")
_ADMISSION_WRITES: Final = (
    ("admissionregistration.k8s.io", "*"),
    ("apiextensions.k8s.io", "customresourcedefinitions"),
    ("apiregistration.k8s.io", "apiservices"),
)
_NODE_ACCESS: Final = (
    (("", "nodes/proxy"), _EVERY_VERB, "reaches every node's kubelet (nodes/proxy)"),
    (("", "persistentvolumes"), frozenset({"create"}), "creates PersistentVolumes (host paths)"),
    (
        ("certificates.k8s.io", "certificatesigningrequests/approval"),
        frozenset({"update", "patch"}),
        "approves certificate signing requests",
    ),
    (("certificates.k8s.io", "signers"), frozenset({"approve", "sign"}), "signs certificates"),
)


def strings(value: Any) -> frozenset[str]:
    """A rule's list field as a set; a lone string counts as a list of it (the API server
    refuses both later, but a wildcard must never slip through as a string)."""
    if isinstance(value, str):
        return frozenset({value})
    if isinstance(value, list):
        return frozenset(str(item) for item in value)
    return frozenset()


class Rule:
    """One PolicyRule, as sets; ``*`` verbs stand for every verb."""

    def __init__(self, rule: Mapping[str, Any]) -> None:
        self.verbs = strings(rule.get("verbs"))
        self.groups = strings(rule.get("apiGroups"))
        self.resources = strings(rule.get("resources"))
        self.effective_verbs = _EVERY_VERB | self.verbs if "*" in self.verbs else self.verbs

    def covers(self, group: str, resource: str) -> bool:
        """Whether the rule's groups and resources include ``resource`` of ``group`` (``*``
        matches all, ``*/scale`` every resource's scale subresource, and the resource ``*``
        asks for any resource of the group)."""
        if "*" not in self.groups and group not in self.groups:
            return False
        if resource == "*" or "*" in self.resources or resource in self.resources:
            return bool(self.resources)
        _, _, sub = resource.partition("/")
        return bool(sub) and f"*/{sub}" in self.resources

    def allows(self, verbs: Iterable[str], group: str, resource: str) -> bool:
        return bool(self.effective_verbs & set(verbs)) and self.covers(group, resource)


def rules_of(role: Mapping[str, Any]) -> list[Rule]:
    rules = role.get("rules")
    return [Rule(mapping(rule)) for rule in rules] if isinstance(rules, list) else []


def dangers(role: Mapping[str, Any], scope: str) -> list[Reason]:
    """What is dangerous in a role's rules, each allowance once, in a stable order."""
    found: dict[str, str] = {}
    for rule in rules_of(role):
        for allowance, text in _rule_dangers(rule, scope):
            found.setdefault(allowance, text)
    return [Reason(rule, text) for rule, text in found.items()]


def _rule_dangers(rule: Rule, scope: str) -> Iterator[tuple[str, str]]:
    if "*" in rule.verbs:
        yield "wildcard-verbs", 'grants verb "*"'
    if "*" in rule.resources and rule.verbs:
        yield "wildcard-resources", 'grants every resource ("*")'
    for verb in ("escalate", "bind"):
        if verb in rule.verbs or any(rule.allows({verb}, RBAC_GROUP, r) for r in _ROLE_KINDS):
            yield "rbac-writes", f"grants verb {verb}"
    if "impersonate" in rule.verbs or any(
        rule.allows({"impersonate"}, group, r) for group, r in _IMPERSONABLE
    ):
        yield "impersonation", "grants verb impersonate"
    if any(rule.allows(WRITE, RBAC_GROUP, kind) for kind in _RBAC_KINDS):
        yield "rbac-writes", "writes RBAC objects"
    if scope != CLUSTER:
        return
    if rule.allows(READ, "", "secrets"):
        yield "secrets", "reads Secrets in every namespace"
    for group, resource in _ADMISSION_WRITES:
        if rule.allows(WRITE, group, resource):
            yield "admission-writes", f"writes {resource if resource != '*' else group} objects"
            break
    if any(rule.allows({"create", "update", "patch"}, g, r) for g, r in _WORKLOADS):
        yield "workloads-everywhere", "runs workloads in every namespace"
    if any(rule.allows({"create", "get", "update", "patch"}, "", r) for r in _ENTER):
        yield "workloads-everywhere", "enters pods in every namespace (exec, attach)"
    if rule.allows({"create"}, "", "serviceaccounts/token"):
        yield "workloads-everywhere", "mints ServiceAccount tokens in every namespace"
    for (group, resource), verbs, text in _NODE_ACCESS:
        if rule.allows(verbs, group, resource):
            yield "node-access", text


def reaches_service_accounts(role: Mapping[str, Any]) -> str | None:
    """How a role acts as the ServiceAccounts of its namespace (runs a pod as one, enters one,
    reads their token Secrets, mints their tokens), or ``None``."""
    for rule in rules_of(role):
        if any(rule.allows({"create", "update", "patch"}, g, r) for g, r in _WORKLOADS):
            return "runs workloads"
        if any(rule.allows({"create", "get", "update", "patch"}, "", r) for r in _ENTER):
            return "enters pods"
        if rule.allows(READ, "", "secrets"):
            return "reads Secrets"
        if rule.allows({"create"}, "", "serviceaccounts/token"):
            return "mints ServiceAccount tokens"
    return None


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, Any]) -> bool:
    """A Kubernetes LabelSelector (``matchLabels``, ``matchExpressions``) against labels; an
    empty selector matches everything, as the API says; one we cannot read matches nothing."""
    match_labels = mapping(selector.get("matchLabels"))
    if any(labels.get(key) != value for key, value in match_labels.items()):
        return False
    expressions = selector.get("matchExpressions") or []
    if not isinstance(expressions, list):
        return False
    for expression in expressions:
        expression = mapping(expression)
        key, operator = expression.get("key"), expression.get("operator")
        if not isinstance(key, str):
            return False
        values = strings(expression.get("values"))
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
        if operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False
    return True
