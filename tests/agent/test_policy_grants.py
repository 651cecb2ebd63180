"""What an object can grant, judged after the merge: the capability model of RBAC, bindings by
the role they bind, ServiceAccounts by every binding that names them, the Pod Security
Standards, and what the policy asks the cluster for, round by round."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from tests.bed.policies import (
    RBAC,
    account_bound_to,
    binding,
    obj,
    pod_deployment,
    rule,
    ruled,
    rules_broken,
)
from transporter.agent.policy import DEFAULT_POLICY, ClusterView, Level, Policy
from transporter.agent.policy.view import RoleKey
from transporter.kube import PlannedObject

EVERY_VERB = [
    "get", "list", "watch", "create", "update", "patch", "delete", "deletecollection",
    "escalate", "bind", "impersonate",
]  # fmt: skip
CLUSTER_WIDE = {
    "wildcard-resources",
    "rbac-writes",
    "impersonation",
    "secrets",
    "admission-writes",
    "workloads-everywhere",
    "node-access",
}


def r(group: str, resource: str, *verbs: str) -> dict[str, Any]:
    return {"apiGroups": [group], "resources": [resource], "verbs": list(verbs)}


def broken(*objects: PlannedObject, view: ClusterView | None = None, **policy: Any) -> set[str]:
    """Every rule the objects break together."""
    found = rules_broken(Policy(**policy), *objects, view=view)
    return {rule for rules in found.values() for rule in rules}


def test_every_verb_spelled_out_is_as_dangerous_as_a_star() -> None:
    spelled = ruled("root", {"apiGroups": ["*"], "resources": ["*"], "verbs": EVERY_VERB})
    assert broken(spelled) == CLUSTER_WIDE
    starred = ruled("root", {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]})
    assert broken(starred) == CLUSTER_WIDE | {"wildcard-verbs"}


@pytest.mark.parametrize(
    ("the_rule", "expected"),
    [
        ({"apiGroups": [""], "resources": ["configmaps"], "verbs": "*"}, {"wildcard-verbs"}),
        (r("*", "secrets", "get"), {"secrets"}),
        (r("", "*/exec", "create"), {"workloads-everywhere"}),
        (r("", "serviceaccounts/token", "create"), {"workloads-everywhere"}),
        (r("apps", "deployments", "patch"), {"workloads-everywhere"}),
        (r("certificates.k8s.io", "signers", "sign"), {"node-access"}),
        (r("", "persistentvolumes", "create"), {"node-access"}),
        (r("apiextensions.k8s.io", "customresourcedefinitions", "update"), {"admission-writes"}),
        (r("rbac.authorization.k8s.io", "clusterroles", "escalate"), {"rbac-writes"}),
        ({"apiGroups": [""], "resources": ["configmaps", "pods/log"], "verbs": ["get"]}, set()),
        (r("apps", "deployments", "get", "list", "watch"), set()),
        ({"nonResourceURLs": ["/healthz"], "verbs": ["get"]}, set()),
    ],
)  # fmt: skip
def test_a_cluster_role_is_judged_by_what_its_rules_grant(
    the_rule: dict[str, Any], expected: set[str]
) -> None:
    assert broken(ruled("r", the_rule)) == expected


def test_in_a_namespace_only_the_powers_that_escape_it_count() -> None:
    reads_secrets = ruled("r", rule("get", "list", resources=("secrets",)), namespace="team-a")
    runs_pods = ruled("r", rule("create", resources=("pods",)), namespace="team-a")
    assert broken(reads_secrets) == broken(runs_pods) == set()
    # ...unless the namespace holds a ServiceAccount with power beyond it.
    view = account_bound_to("cluster-admin", "ci", "team-a")
    for role in (reads_secrets, runs_pods):
        [refusal] = DEFAULT_POLICY.check([role], view)
        assert [r.rule for r in refusal.reasons] == ["powerful-service-accounts"]
        assert "ServiceAccount ci" in refusal.reason
        assert "binds ClusterRole cluster-admin" in refusal.reason


def test_a_binding_is_judged_by_the_role_it_binds_from_the_event_or_the_cluster() -> None:
    reader = {"rules": [rule("list", resources=("secrets",))]}
    view = ClusterView(roles={("ClusterRole", None, "reader"): reader})
    cluster_wide = binding("b", "ClusterRole", "reader")
    in_a_namespace = binding("b", "ClusterRole", "reader", namespace="team-a")
    assert broken(cluster_wide, view=view) == {"secrets"}
    assert broken(in_a_namespace, view=view) == set()
    [refusal] = DEFAULT_POLICY.check([cluster_wide], view)
    assert refusal.reason == (
        "binds ClusterRole reader, which reads Secrets in every namespace (rule secrets)"
    )
    # The event's own version of the role wins over the cluster's.
    harmless = ruled("reader", rule("get"))
    assert broken(harmless, cluster_wide, view=view) == set()
    # A role that is nowhere grants nothing (it is judged when it comes).
    assert broken(cluster_wide) == set()


@pytest.mark.parametrize(
    ("ref_kind", "ref_name", "namespace", "expected"),
    [
        ("ClusterRole", "cluster-admin", None, {"cluster-admin"}),
        ("ClusterRole", "admin", "team-a", {"builtin-roles"}),
        ("ClusterRole", "edit", None, {"builtin-roles"}),
        ("ClusterRole", "system:controller:pv-protection-controller", None, {"builtin-roles"}),
        ("Role", "system:controller:bootstrap-signer", "kube-public", {"builtin-roles"}),
        ("ClusterRole", "view", "team-a", set()),
    ],
)  # fmt: skip
def test_bindings_to_powerful_built_in_roles_are_refused(
    ref_kind: str, ref_name: str, namespace: str | None, expected: set[str]
) -> None:
    assert broken(binding("b", ref_kind, ref_name, namespace=namespace)) == expected


def test_a_binding_is_judged_as_it_will_be_after_the_merge() -> None:
    # Only subjects, named like the built-in binding: harmless as sent...
    patch = obj(
        RBAC, "ClusterRoleBinding", "cluster-admin", subjects=[{"kind": "User", "name": "x"}]
    )
    assert broken(patch) == set()
    # ...but the cluster's binding of that name binds cluster-admin, and the merge keeps it.
    merged = {
        "metadata": {
            "name": "cluster-admin",
            "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
        },
        "roleRef": {"apiGroup": RBAC.split("/")[0], "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "Group", "name": "system:masters"}, {"kind": "User", "name": "x"}],
    }
    assert broken(patch, view=ClusterView(merged={0: merged})) == {"cluster-admin", "builtin-roles"}


def test_built_in_roles_may_not_be_changed() -> None:
    for name in ("admin", "view", "system:basic-user"):
        assert broken(ruled(name, rule("get"))) == {"builtin-roles"}, name


def test_cluster_roles_that_aggregate_or_feed_an_aggregate_are_refused() -> None:
    aggregating = obj(
        RBAC, "ClusterRole", "all", aggregationRule={"clusterRoleSelectors": [{}]}, rules=[]
    )
    assert broken(aggregating) == {"aggregation"}
    feeding = obj(
        RBAC,
        "ClusterRole",
        "extra",
        rules=[rule("get")],
        metadata={
            "name": "extra",
            "labels": {"rbac.authorization.k8s.io/aggregate-to-edit": "true"},
        },
    )
    [refusal] = DEFAULT_POLICY.check([feeding])
    assert refusal.reason == "feeds its rules into ClusterRole edit (rule aggregation)"
    # A selector of the cluster's own aggregating roles counts as much as the usual labels.
    custom = obj(
        RBAC, "ClusterRole", "c", rules=[], metadata={"name": "c", "labels": {"team": "a"}}
    )
    selector = {"matchExpressions": [{"key": "team", "operator": "In", "values": ["a", "b"]}]}
    view = ClusterView(aggregators=[("team-roles", selector)])
    assert broken(custom, view=view) == {"aggregation"}
    assert (
        broken(custom, view=ClusterView(aggregators=[("x", {"matchLabels": {"team": "b"}})]))
        == set()
    )


def test_pods_meet_the_pod_security_standard_of_the_policy() -> None:
    privileged = obj(
        "v1",
        "Pod",
        "p",
        "team-a",
        spec={
            "hostPID": True,
            "hostNetwork": True,
            "containers": [{"name": "c", "image": "x", "securityContext": {"privileged": True}}],
            "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
        },
    )
    [refusal] = DEFAULT_POLICY.check([privileged])
    assert refusal.reason.startswith(
        'violates the Pod Security Standard "baseline": host namespaces (hostNetwork=true,'
        ' hostPID=true), hostPath volumes (volume "root"), privileged (container "c" must not'
        " set securityContext.privileged=true)"
    )
    assert Policy(pod_security=Level.PRIVILEGED).check([privileged]) == []
    plain = pod_deployment("web", "team-a")
    assert DEFAULT_POLICY.check([plain]) == []
    [strict] = Policy(pod_security=Level.RESTRICTED).check([plain])
    assert "allowPrivilegeEscalation != false" in strict.reason
    volume = obj("v1", "PersistentVolume", "pv", spec={"hostPath": {"path": "/"}})
    assert broken(volume) == {"podSecurity"}
    assert broken(volume, pod_security=Level.PRIVILEGED) == set()


def test_a_workload_is_judged_by_the_service_account_it_runs_as() -> None:
    web = pod_deployment("web", "team-a", "ci")
    assert broken(web, view=account_bound_to("cluster-admin", "ci", "team-a")) == {
        "powerful-service-accounts"
    }
    assert broken(web, view=account_bound_to("cluster-admin", "other", "team-a")) == set()
    # Every account of the namespace, through its group.
    group = {
        "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "Group", "name": "system:serviceaccounts:team-a"}],
    }
    assert broken(web, view=ClusterView(bindings={None: [group], "team-a": []})) == {
        "powerful-service-accounts"
    }
    # A RoleBinding confines a role to the namespace: running pods there is no escape...
    runs_pods = {"rules": [rule("create", resources=("pods",))]}
    local = {
        "roleRef": {"kind": "ClusterRole", "name": "runner"},
        "subjects": [{"kind": "ServiceAccount", "name": "ci", "namespace": "team-a"}],
    }
    roles: dict[RoleKey, Mapping[str, Any] | None] = {("ClusterRole", None, "runner"): runs_pods}
    view = ClusterView(bindings={None: [], "team-a": [local]}, roles=roles)
    assert broken(web, view=view) == set()
    # ...and a built-in name alone does not make an account powerful.
    auth = dict(local, roleRef={"kind": "ClusterRole", "name": "system:auth-delegator"})
    assert broken(web, view=ClusterView(bindings={None: [auth], "team-a": []})) == set()


def test_deletes_are_judged_on_the_object_as_it_is() -> None:
    cluster_admin = obj(RBAC, "ClusterRole", "cluster-admin")
    labelled = {"metadata": {"labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}}}
    refusals = rules_broken(
        DEFAULT_POLICY, cluster_admin, delete=True, view=ClusterView(merged={0: labelled})
    )
    assert refusals == {"cluster-admin": ["delete-rbac", "delete-system"]}
    assert rules_broken(DEFAULT_POLICY, obj("v1", "ConfigMap", "system:x", "a"), delete=True) == {
        "system:x": ["delete-system"]
    }
    assert rules_broken(DEFAULT_POLICY, obj("v1", "ConfigMap", "cm", "a"), delete=True) == {}


def test_the_policy_asks_for_what_it_needs_round_by_round() -> None:
    objects = [
        obj("v1", "ConfigMap", "cm", "team-a"),
        binding("b", "ClusterRole", "reader"),
        pod_deployment("web", "team-a", "ci"),
        ruled("mine", rule("get")),
    ]
    view = ClusterView()
    first = DEFAULT_POLICY.needs(objects, view)
    assert first.merge == {1, 2, 3}  # a ConfigMap is judged by its name alone
    assert not (first.roles or first.bindings or first.aggregators)
    view.merged.update({1: objects[1].body, 2: objects[2].body, 3: objects[3].body})
    second = DEFAULT_POLICY.needs(objects, view)
    assert second.roles == {("ClusterRole", None, "reader")}
    assert second.bindings == {None, "team-a"}
    assert second.aggregators
    ci = {
        "roleRef": {"kind": "ClusterRole", "name": "deployer"},
        "subjects": [{"kind": "ServiceAccount", "name": "ci", "namespace": "team-a"}],
    }
    view.roles[("ClusterRole", None, "reader")] = None
    view.bindings.update({None: [ci], "team-a": []})
    view.aggregators = []
    third = DEFAULT_POLICY.needs(objects, view)
    assert third.roles == {("ClusterRole", None, "deployer")}
    view.roles[("ClusterRole", None, "deployer")] = {"rules": []}
    assert not DEFAULT_POLICY.needs(objects, view)
    assert DEFAULT_POLICY.check(objects, view) == []
    # A delete looks at every object as it is, and at nothing else.
    assert DEFAULT_POLICY.needs(objects, ClusterView(), delete=True).merge == {0, 1, 2, 3}
