"""The agent's policy: each default refusal and its allowance, patterns, and the policy file."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.bed.policies import (
    RBAC,
    account_bound_to,
    binding,
    configmap,
    namespace,
    obj,
    pod_deployment,
    role,
    rule,
    ruled,
    rules_broken,
    webhooks,
)
from transporter.agent.policy import (
    ALLOWANCES,
    DEFAULT_POLICY,
    MAX_SHOWN,
    NOT_APPLIED,
    ClusterView,
    Policy,
    PolicyError,
    load_policy,
    parse_policy,
    refusal_message,
    refused_results,
)
from transporter.kube import PlannedObject
from transporter.protocol.model import ResourceStatus

README = Path(__file__).parents[2] / "README.md"


Case = tuple[list[PlannedObject], str, bool, ClusterView | None]


def case(
    objects: list[PlannedObject],
    rule: str,
    *,
    delete: bool = False,
    view: ClusterView | None = None,
) -> Any:
    return pytest.param(objects, rule, delete, view, id=rule + ("-delete" if delete else ""))


DEFAULT_REFUSALS = [
    case([binding("ops", "ClusterRole", "cluster-admin")], "cluster-admin"),
    case([binding("ops", "ClusterRole", "edit", namespace="team-a")], "builtin-roles"),
    case([role("ops", "*")], "wildcard-verbs"),
    case([ruled("ops", rule("get", resources=("*",)), namespace="team-a")], "wildcard-resources"),
    case(
        [
            ruled(
                "ops",
                rule("create", resources=("rolebindings",), group="rbac.authorization.k8s.io"),
                namespace="team-a",
            )
        ],
        "rbac-writes",
    ),
    case([ruled("ops", rule("impersonate", resources=("users",)))], "impersonation"),
    case([ruled("ops", rule("list", resources=("secrets",)))], "secrets"),
    case([ruled("ops", rule("create", resources=("pods",)))], "workloads-everywhere"),
    case([ruled("ops", rule("get", resources=("nodes/proxy",)))], "node-access"),
    case(
        [
            ruled(
                "ops",
                rule(
                    "patch",
                    resources=("validatingwebhookconfigurations",),
                    group="admissionregistration.k8s.io",
                ),
            )
        ],
        "admission-writes",
    ),
    case(
        [obj(RBAC, "ClusterRole", "ops", aggregationRule={"clusterRoleSelectors": []})],
        "aggregation",
    ),
    case(
        [pod_deployment("web", "team-a", "ops")],
        "powerful-service-accounts",
        view=account_bound_to("cluster-admin", "ops", "team-a"),
    ),
    case(
        [obj("v1", "Secret", "t", "team-a", type="kubernetes.io/service-account-token")],
        "service-account-tokens",
    ),
    case([webhooks("MutatingWebhookConfiguration")], "mutating-webhooks"),
    case([webhooks("ValidatingWebhookConfiguration")], "validating-webhooks"),
    case(
        [obj("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy", "p", spec={})],
        "admission-policies",
    ),
    case(
        [
            obj(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                "gadgets.example.com",
                spec={"conversion": {"strategy": "Webhook"}},
            )
        ],
        "crd-conversion-webhooks",
    ),
    case([obj("apiregistration.k8s.io/v1", "APIService", "ops", spec={})], "apiservices"),
    case([configmap("ops", "kube-system")], "kube-system"),
    case([role("ops", "get", namespace="team-a")], "delete-rbac", delete=True),
    case([webhooks("ValidatingWebhookConfiguration")], "delete-admission", delete=True),
    case(
        [obj("apiextensions.k8s.io/v1", "CustomResourceDefinition", "gadgets.example.com")],
        "delete-crds",
        delete=True,
    ),
    case(
        [obj("apiregistration.k8s.io/v1", "APIService", "v1.example.com")],
        "delete-apiservices",
        delete=True,
    ),
    case(
        [configmap("ops")],
        "delete-system",
        delete=True,
        view=ClusterView(
            merged={
                0: {
                    "metadata": {
                        "name": "ops",
                        "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
                    }
                }
            }
        ),
    ),
]


@pytest.mark.parametrize(("objects", "rule", "delete", "view"), DEFAULT_REFUSALS)
def test_each_default_refusal_names_its_rule(
    objects: list[PlannedObject], rule: str, delete: bool, view: ClusterView | None
) -> None:
    assert rules_broken(DEFAULT_POLICY, *objects, delete=delete, view=view) == {
        objects[0].name: [rule]
    }
    [refusal] = DEFAULT_POLICY.check(objects, view, delete=delete)
    assert refusal.message.startswith("refused by agent policy: ")
    assert refusal.message.endswith(f"(rule {rule})")


@pytest.mark.parametrize(("objects", "rule", "delete", "view"), DEFAULT_REFUSALS)
def test_each_default_refusal_can_be_allowed_explicitly(
    objects: list[PlannedObject], rule: str, delete: bool, view: ClusterView | None
) -> None:
    assert Policy(allow=frozenset({rule})).check(objects, view, delete=delete) == []
    others = frozenset(ALLOWANCES) - {rule}
    assert rules_broken(Policy(allow=others), *objects, delete=delete, view=view) == {
        objects[0].name: [rule]
    }


def test_the_default_refusals_are_exactly_the_allowances() -> None:
    rules = {param.values[1] for param in DEFAULT_REFUSALS}
    assert rules == set(ALLOWANCES)


def test_a_binding_to_a_wildcard_role_of_the_same_event_is_refused() -> None:
    objects = [
        role("all", "*"),
        binding("to-all", "ClusterRole", "all"),
        role("ns-all", "*", namespace="team-a"),
        binding("to-ns-all", "Role", "ns-all", namespace="team-a"),
        binding("to-cluster-all", "ClusterRole", "all", namespace="team-b"),
        # a Role of the same name in another namespace is another role
        binding("elsewhere", "Role", "ns-all", namespace="team-b"),
        role("narrow", "get"),
        binding("to-narrow", "ClusterRole", "narrow"),
    ]
    assert rules_broken(DEFAULT_POLICY, *objects) == {
        "all": ["wildcard-verbs"],
        "to-all": ["wildcard-verbs"],
        "ns-all": ["wildcard-verbs"],
        "to-ns-all": ["wildcard-verbs"],
        "to-cluster-all": ["wildcard-verbs"],
    }
    [bound] = [r for r in DEFAULT_POLICY.check(objects) if r.object.name == "to-all"]
    assert bound.reason == 'binds ClusterRole all, which grants verb "*" (rule wildcard-verbs)'
    # The same binding alone: the agent does not read the cluster's roles.
    assert DEFAULT_POLICY.check([binding("to-all", "ClusterRole", "all")]) == []
    assert Policy(allow=frozenset({"wildcard-verbs"})).check(objects) == []


def test_one_object_breaking_several_rules_names_them_all() -> None:
    [refusal] = DEFAULT_POLICY.check([role("root", "*", namespace="kube-system")])
    assert [reason.rule for reason in refusal.reasons] == ["kube-system", "wildcard-verbs"]
    assert refusal.describe() == (
        "Role kube-system/root: in the namespace kube-system (rule kube-system);"
        ' grants verb "*" (rule wildcard-verbs)'
    )


def test_kinds_are_group_kind_patterns() -> None:
    policy = Policy(kinds=("core/ConfigMap", "core/Namespace", "apps/*", "*.example.com/*"))
    objects = [
        configmap("cm"),
        namespace("ns"),
        obj("v1", "Secret", "secret", "default"),
        obj("apps/v1", "Deployment", "web", "default"),
        obj("batch/v1", "Job", "job", "default"),
        obj("shop.example.com/v1", "Widget", "widget", "default"),
        obj("example.com/v1", "Widget", "bare", "default"),  # "*." needs a subdomain
    ]
    assert rules_broken(policy, *objects) == {
        "secret": ["kinds"],
        "job": ["kinds"],
        "bare": ["kinds"],
    }
    [refusal, *_] = policy.check(objects)
    assert refusal.reason == "kind core/Secret is not among the policy's kinds (rule kinds)"
    assert Policy(kinds=("*",)).check(objects) == []
    assert Policy(kinds=("*/*",)).check(objects) == []
    # Matching is case-sensitive, like Kubernetes kinds.
    assert rules_broken(Policy(kinds=("core/configmap",)), configmap()) == {"cm": ["kinds"]}


def test_dangerous_kinds_need_their_allowance_even_when_kinds_match() -> None:
    policy = Policy(kinds=("admissionregistration.k8s.io/*",))
    hook = webhooks("ValidatingWebhookConfiguration")
    assert rules_broken(policy, hook) == {"hooks": ["validating-webhooks"]}
    allowed = Policy(kinds=policy.kinds, allow=frozenset({"validating-webhooks"}))
    assert allowed.check([hook]) == []
    # ...and an allowance does not open a kind the policy's kinds leave out.
    assert rules_broken(Policy(kinds=("core/*",), allow=allowed.allow), hook) == {
        "hooks": ["kinds"]
    }


def test_namespaces_are_globs_and_a_namespace_is_in_itself() -> None:
    policy = Policy(namespaces=("team-*", "default"))
    objects = [
        configmap("a", "team-a"),
        configmap("d", "default"),
        configmap("p", "prod"),
        namespace("team-new"),
        namespace("prod"),
        role("reader", "get"),  # cluster-scoped: namespaces do not apply
    ]
    assert rules_broken(policy, *objects) == {"p": ["namespaces"], "prod": ["namespaces"]}
    [refusal, _] = policy.check(objects)
    assert refusal.reason == (
        "namespace prod is not among the policy's namespaces (rule namespaces)"
    )
    assert rules_broken(Policy(namespaces=("team-?",)), configmap("x", "team-a")) == {}
    assert rules_broken(Policy(namespaces=("team-?",)), configmap("x", "team-ab")) == {
        "x": ["namespaces"]
    }


def test_cluster_scoped_objects_can_be_refused_but_namespaces_still_follow_namespaces() -> None:
    policy = Policy(namespaces=("team-*",), cluster_scoped=False)
    objects = [role("reader", "get"), namespace("team-new"), configmap("cm", "team-a")]
    assert rules_broken(policy, *objects) == {"reader": ["clusterScoped"]}


def test_kube_system_needs_its_allowance_even_when_namespaces_match() -> None:
    assert rules_broken(Policy(namespaces=("kube-*",)), configmap("x", "kube-system")) == {
        "x": ["kube-system"]
    }
    assert rules_broken(Policy(namespaces=("kube-*",)), configmap("x", "kube-public")) == {}
    allowed = frozenset({"kube-system"})
    assert Policy(allow=allowed).check([configmap("x", "kube-system")]) == []
    assert rules_broken(
        Policy(namespaces=("team-*",), allow=allowed), configmap("x", "kube-system")
    ) == {"x": ["namespaces"]}


def test_results_fail_every_object_and_say_which_were_refused() -> None:
    objects = [configmap("cm"), binding("ops", "ClusterRole", "cluster-admin"), namespace("n")]
    refusals = DEFAULT_POLICY.check(objects)
    results = refused_results(objects, refusals)
    assert [(r.kind, r.name, r.status, r.message) for r in results] == [
        ("ConfigMap", "cm", ResourceStatus.FAILED, NOT_APPLIED),
        (
            "ClusterRoleBinding",
            "ops",
            ResourceStatus.FAILED,
            "refused by agent policy: binds ClusterRole cluster-admin (rule cluster-admin)",
        ),
        ("Namespace", "n", ResourceStatus.FAILED, NOT_APPLIED),
    ]
    assert refusal_message(refusals) == (
        "refused by agent policy: ClusterRoleBinding ops:"
        " binds ClusterRole cluster-admin (rule cluster-admin)"
    )


def test_the_event_message_names_a_few_refusals_and_counts_the_rest() -> None:
    objects = [configmap(f"cm-{i}", "kube-system") for i in range(MAX_SHOWN + 3)]
    message = refusal_message(DEFAULT_POLICY.check(objects))
    assert message.startswith("refused by agent policy: ConfigMap kube-system/cm-0: in the")
    assert message.count("(rule kube-system)") == MAX_SHOWN
    assert message.endswith("; and 3 more")


# --- the policy file --------------------------------------------------------------------------


def test_a_policy_file_becomes_a_policy() -> None:
    policy = parse_policy(
        """
version: 1
kinds: [core/ConfigMap, "apps/*"]
namespaces:
  - team-*
clusterScoped: false
allow: [cluster-admin, kube-system]
""",
        source="here",
    )
    assert policy == Policy(
        kinds=("core/ConfigMap", "apps/*"),
        namespaces=("team-*",),
        cluster_scoped=False,
        allow=frozenset({"cluster-admin", "kube-system"}),
        source="here",
    )
    assert "cluster-scoped no" in policy.summary()


def test_an_empty_mapping_is_the_default_policy() -> None:
    assert parse_policy("{}") == Policy(source="policy")
    assert parse_policy("# comments only\n{}\n").check([configmap("x", "kube-system")])


def test_the_readme_example_is_a_valid_policy() -> None:
    text = README.read_text()
    section = text.split("### Agent policy", 1)[1]
    example = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert example is not None
    policy = parse_policy(example.group(1))
    assert policy.allow and policy.kinds != ("*",)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("kinds: ['*']\nkindz: []\n", "unknown key 'kindz' (known: version, kinds,"),
        ("allow: [cluster-admins]\n", "allow[0]: unknown allowance 'cluster-admins' (known:"),
        ("allow: cluster-admin\n", "allow must be a list of: cluster-admin, builtin-roles"),
        ("allow: [[x]]\n", "allow[0]: unknown allowance ['x']"),
        ("kinds: [Deployment]\n", "kinds[0]: 'Deployment' is not GROUP/KIND (write core/"),
        ("kinds: [/ConfigMap]\n", "kinds[0]: '/ConfigMap' is not GROUP/KIND"),
        ("kinds: ['*', 'apps/']\n", "kinds[1]: 'apps/' is not GROUP/KIND"),
        ("kinds: [a/b/c]\n", "kinds[0]: 'a/b/c' is not GROUP/KIND"),
        ("kinds: []\n", "kinds must be a non-empty list of patterns"),
        ("kinds: core/ConfigMap\n", "kinds must be a non-empty list of patterns"),
        ("namespaces: [team-a, 3]\n", "namespaces[1]: 3 is not a pattern"),
        ("namespaces: [' team']\n", "namespaces[0]: ' team' is not a pattern"),
        ("clusterScoped: maybe\n", "clusterScoped: 'maybe' is not true or false"),
        ("version: 2\n", "version: 2 is not supported (only 1)"),
        ("version: true\n", "version: True is not supported"),
        ("- kinds\n", "must be a mapping with the keys version, kinds,"),
        ("kinds: [unclosed\n", "not valid YAML: "),
        ("allow: []\nallow: [kube-system]\n", "YAML duplicate key 'allow' at line 2"),
        ("", "is empty (write {} for the default policy)"),
        ("# nothing\n", "is empty"),
        ("{}\n---\n{}\n", "holds several YAML documents"),
        ("podSecurity: strict\n", "podSecurity: 'strict' is not one of privileged, baseline"),
        ("podSecurity: [baseline]\n", "podSecurity: ['baseline'] is not one of"),
    ],
)
def test_a_bad_policy_file_is_a_one_line_error_naming_the_key(text: str, complaint: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text)
    message = str(caught.value)
    assert complaint in message
    assert "\n" not in message


def test_load_policy_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("allow: [kube-system]\n")
    assert load_policy(path).allow == {"kube-system"}
    assert load_policy(path).source == f"policy file {path}"
    path.write_text("nope: 1\n")
    with pytest.raises(PolicyError, match=f"^policy file {re.escape(str(path))}: unknown key"):
        load_policy(path)
    missing = tmp_path / "missing.yaml"
    with pytest.raises(PolicyError, match=r"missing\.yaml: cannot read it: No such file"):
        load_policy(missing)
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(PolicyError, match="is not UTF-8 text"):
        load_policy(path)
