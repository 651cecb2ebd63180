"""Plans on a real API server: would_create, would_change with the exact fields, unchanged,
refused by the policy, failed by the API server; a Secret's values nowhere in the report; and
nothing written."""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client as k8s

from tests.agent.conftest import configmap, event, raw, run
from tests.bed.secrets import b64, leaks
from transporter.agent.kube_runner import KubeRunner
from transporter.kube import KubeTarget
from transporter.kube.fingerprint import fingerprint
from transporter.protocol import codec
from transporter.protocol.model import (
    ABSENT,
    Action,
    EventState,
    FieldChange,
    Phase,
    ResourceStatus,
    object_key,
)
from transporter.security.scrub import REDACTED

BINDING = json.dumps(
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "plan-ops"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "cluster-admin",
        },
        "subjects": [{"kind": "ServiceAccount", "name": "ops", "namespace": "default"}],
    }
)


def core(api: k8s.ApiClient) -> Any:
    return k8s.CoreV1Api(api)


def cm_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/configmaps/{name}"


def make_configmap(api: k8s.ApiClient, namespace: str, name: str, **data: str) -> dict[str, Any]:
    core(api).create_namespaced_config_map(namespace, {"metadata": {"name": name}, "data": data})
    found = raw(api, cm_path(namespace, name))
    assert found is not None
    return found


async def test_a_plan_says_what_an_apply_would_do_and_writes_nothing(
    target: KubeTarget, api: k8s.ApiClient, namespace: str
) -> None:
    same = make_configmap(api, namespace, "same", a="1")
    changed = make_configmap(api, namespace, "changed", a="1", gone="x")
    manifests = (
        configmap("new", namespace, a="1"),
        configmap("same", namespace, a="1"),
        configmap("changed", namespace, a="2", b="3"),
        BINDING,
        configmap("bad", namespace, **{"no/slash": "x"}),
    )
    reports = await run(KubeRunner(target), event(*manifests, action=Action.PLAN))
    final = reports[-1]
    assert [(r.state, r.phase) for r in reports] == [
        (EventState.IN_PROGRESS, Phase.VALIDATING),
        (EventState.IN_PROGRESS, Phase.APPLYING),
        (EventState.COMPLETED, Phase.COMPLETED),
    ]
    assert final.resources is not None
    found = {r.name: r for r in final.resources}
    assert [r.name for r in final.resources] == ["new", "same", "changed", "plan-ops", "bad"]
    assert found["new"].status is ResourceStatus.WOULD_CREATE
    assert found["new"].fingerprint == ABSENT
    assert found["same"].status is ResourceStatus.UNCHANGED
    assert found["same"].fingerprint == fingerprint(same, json.loads(manifests[1]))
    assert found["changed"].status is ResourceStatus.WOULD_CHANGE
    assert found["changed"].fingerprint == fingerprint(changed, json.loads(manifests[2]))
    # The manifest does not own "gone" (it was created by another manager): it stays.
    assert found["changed"].diff == (
        FieldChange("data.a", "change", '"1"', '"2"'),
        FieldChange("data.b", "add", "", '"3"'),
    )
    assert found["changed"].message == "2 fields would change"
    assert found["plan-ops"].status is ResourceStatus.REFUSED
    assert "cluster-admin" in found["plan-ops"].message
    assert found["bad"].status is ResourceStatus.FAILED
    assert "no/slash" in found["bad"].message and "dry run" in found["bad"].message
    assert final.message == "plan: 1 would_create, 1 unchanged, 1 would_change, 1 refused, 1 failed"
    # Nothing was written.
    assert raw(api, cm_path(namespace, "new")) is None
    assert raw(api, cm_path(namespace, "same")) == same
    assert raw(api, cm_path(namespace, "changed")) == changed
    assert raw(api, "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/plan-ops") is None


async def test_a_plan_of_objects_of_a_new_namespace(target: KubeTarget, namespace: str) -> None:
    fresh = f"{namespace}-new"
    ns = json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": fresh}})
    reports = await run(
        KubeRunner(target),
        event(ns, configmap("c", fresh), configmap("d", f"{namespace}-none"), action=Action.PLAN),
    )
    final = reports[-1]
    assert final.state is EventState.COMPLETED
    assert final.resources is not None
    assert [(r.name, r.status, r.fingerprint) for r in final.resources] == [
        (fresh, ResourceStatus.WOULD_CREATE, ABSENT),
        ("c", ResourceStatus.WOULD_CREATE, ABSENT),
        ("d", ResourceStatus.FAILED, ABSENT),
    ]
    assert final.resources[2].message == f'namespace "{namespace}-none" does not exist'


async def test_a_plan_that_failed_for_every_object_fails(
    target: KubeTarget, namespace: str
) -> None:
    reports = await run(
        KubeRunner(target), event(configmap("bad", namespace, **{"a b": "x"}), action=Action.PLAN)
    )
    assert reports[-1].state is EventState.FAILED
    assert reports[-1].message == "plan: 1 failed"


OLD, NEW, ADDED = "old-pw-s3cr3t-7781", "new-pw-s3cr3t-7782", "added-s3cr3t-7783"


async def test_a_secrets_values_never_show_in_a_plan(
    target: KubeTarget, api: k8s.ApiClient, namespace: str
) -> None:
    core(api).create_namespaced_secret(
        namespace, {"metadata": {"name": "creds"}, "data": {"pw": b64(OLD), "same": b64("same")}}
    )
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds", "namespace": namespace},
        "data": {"same": b64("same")},
        "stringData": {"pw": NEW, "added": ADDED},
    }
    reports = await run(KubeRunner(target), event(json.dumps(secret), action=Action.PLAN))
    final = reports[-1]
    assert final.state is EventState.COMPLETED
    assert final.resources is not None
    (result,) = final.resources
    assert result.status is ResourceStatus.WOULD_CHANGE
    assert result.diff == (
        FieldChange("data.added", "add", "", f'"{REDACTED}"'),
        FieldChange("data.pw", "change", f'"{REDACTED}"', f'"{REDACTED}"'),
    )
    wire = "".join(codec.encode(report) for report in reports)
    values = [OLD, NEW, ADDED]
    assert leaks(wire + repr(reports), *values, *map(b64, values)) == []


ROLE = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "Role",
    "metadata": {"name": "reader"},
    "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}],
}


async def test_a_plan_of_a_delete_plans_a_delete(
    target: KubeTarget, api: k8s.ApiClient, namespace: str
) -> None:
    """``plan_of: delete``: would_delete for what exists, not_found for what does not, each with
    its fingerprint, and the policy judges it as a delete (a Role's delete is refused, its apply
    would not be); then applying the plan deletes as planned."""
    there = make_configmap(api, namespace, "there", a="1")
    role: Any = {**ROLE, "metadata": {"name": "reader", "namespace": namespace}}
    k8s.RbacAuthorizationV1Api(api).create_namespaced_role(namespace, role)
    manifests = (configmap("there", namespace), configmap("none", namespace), json.dumps(role))
    plan = event(*manifests, action=Action.PLAN, plan_of=Action.DELETE)
    final = (await run(KubeRunner(target), plan))[-1]
    assert final.state is EventState.COMPLETED, final.message
    assert final.resources is not None
    found = {r.name: r for r in final.resources}
    assert [r.status for r in final.resources] == [
        ResourceStatus.WOULD_DELETE,
        ResourceStatus.NOT_FOUND,
        ResourceStatus.REFUSED,
    ]
    assert found["there"].fingerprint == fingerprint(there, None)
    assert (found["none"].status, found["none"].fingerprint) == (ResourceStatus.NOT_FOUND, ABSENT)
    assert found["reader"].status is ResourceStatus.REFUSED
    assert "delete-rbac" in found["reader"].message
    assert final.message == "plan: 1 would_delete, 1 not_found, 1 refused"
    assert raw(api, cm_path(namespace, "there")) == there, "nothing is deleted by a plan"
    expect = {
        object_key(r.api_version, r.kind, r.namespace, r.name): r.fingerprint
        for r in final.resources
        if r.status is not ResourceStatus.REFUSED
    }
    applied = (
        await run(KubeRunner(target), event(*manifests[:2], action=Action.DELETE, expect=expect))
    )[-1]
    assert applied.state is EventState.COMPLETED, applied.message
    assert raw(api, cm_path(namespace, "there")) is None
