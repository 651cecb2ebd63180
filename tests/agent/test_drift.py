"""Applying a plan on a real API server: what is as planned is applied (or deleted); what
changed since the plan, appeared since, or was not planned is left as it is (``drifted``), and
the event fails saying so."""

from __future__ import annotations

from typing import Any

from kubernetes import client as k8s

from tests.agent.conftest import configmap, event, raw, run
from tests.agent.test_planning import BINDING
from transporter.agent.kube_runner import KubeRunner
from transporter.kube import KubeTarget
from transporter.kube.fingerprint import CHANGED, NOT_PLANNED
from transporter.protocol.model import (
    Action,
    EventState,
    ResourceResult,
    ResourceStatus,
    object_key,
)


def core(api: k8s.ApiClient) -> Any:
    return k8s.CoreV1Api(api)


def data_of(api: k8s.ApiClient, namespace: str, name: str) -> dict[str, str] | None:
    found = raw(api, f"/api/v1/namespaces/{namespace}/configmaps/{name}")
    return None if found is None else found.get("data", {})


def expect_of(results: tuple[ResourceResult, ...] | None) -> dict[str, str]:
    """What applying the plan expects, as the control plane makes it from the plan's results."""
    assert results is not None
    return {
        object_key(r.api_version, r.kind, r.namespace, r.name): r.fingerprint
        for r in results
        if r.status not in (ResourceStatus.FAILED, ResourceStatus.REFUSED)
    }


async def plan_of(target: KubeTarget, *manifests: str, **payload: Any) -> dict[str, str]:
    final = (await run(KubeRunner(target), event(*manifests, action=Action.PLAN, **payload)))[-1]
    assert final.state is EventState.COMPLETED, final.message
    return expect_of(final.resources)


async def test_applying_a_plan_applies_what_is_as_planned(
    target: KubeTarget, api: k8s.ApiClient, namespace: str
) -> None:
    core(api).create_namespaced_config_map(
        namespace, {"metadata": {"name": "old"}, "data": {"a": "1"}}
    )
    manifests = (configmap("new", namespace, a="1"), configmap("old", namespace, a="2"))
    expect = await plan_of(target, *manifests)
    final = (await run(KubeRunner(target), event(*manifests, expect=expect)))[-1]
    assert final.state is EventState.COMPLETED, final.message
    assert final.resources is not None
    assert [(r.name, r.status) for r in final.resources] == [
        ("new", ResourceStatus.CREATED),
        ("old", ResourceStatus.UPDATED),
    ]
    assert data_of(api, namespace, "old") == {"a": "2"}


async def test_what_changed_since_the_plan_is_left_alone(
    target: KubeTarget, api: k8s.ApiClient, namespace: str
) -> None:
    for name in ("edited", "kept"):
        core(api).create_namespaced_config_map(
            namespace, {"metadata": {"name": name}, "data": {"a": "1"}}
        )
    planned = (
        configmap("edited", namespace, a="2"),
        configmap("kept", namespace, a="2"),
        configmap("appeared", namespace, a="2"),
    )
    expect = await plan_of(target, *planned)
    # Between plan and apply: someone edits one object and creates another.
    core(api).patch_namespaced_config_map("edited", namespace, {"data": {"a": "by hand"}})
    core(api).create_namespaced_config_map(
        namespace, {"metadata": {"name": "appeared"}, "data": {"x": "y"}}
    )
    manifests = (*planned, configmap("unplanned", namespace, a="2"))
    final = (await run(KubeRunner(target), event(*manifests, expect=expect)))[-1]
    assert final.state is EventState.FAILED
    assert final.resources is not None
    found = {r.name: r for r in final.resources}
    assert (found["edited"].status, found["edited"].message) == (ResourceStatus.DRIFTED, CHANGED)
    assert (found["appeared"].status, found["appeared"].message) == (
        ResourceStatus.DRIFTED,
        CHANGED,
    )
    assert (found["unplanned"].status, found["unplanned"].message) == (
        ResourceStatus.DRIFTED,
        NOT_PLANNED,
    )
    assert found["kept"].status is ResourceStatus.UPDATED
    assert final.message == f"drifted: 3 of 4 objects not touched: ConfigMap/edited: {CHANGED}"
    assert data_of(api, namespace, "edited") == {"a": "by hand"}
    assert data_of(api, namespace, "appeared") == {"x": "y"}
    assert data_of(api, namespace, "unplanned") is None
    assert data_of(api, namespace, "kept") == {"a": "2"}


async def test_a_delete_with_a_plan_deletes_only_what_is_as_planned(
    target: KubeTarget, api: k8s.ApiClient, namespace: str
) -> None:
    for name in ("gone", "edited"):
        core(api).create_namespaced_config_map(
            namespace, {"metadata": {"name": name}, "data": {"a": "1"}}
        )
    manifests = (configmap("gone", namespace, a="1"), configmap("edited", namespace, a="1"))
    expect = await plan_of(target, *manifests, plan_of=Action.DELETE)
    core(api).patch_namespaced_config_map("edited", namespace, {"metadata": {"labels": {"x": "y"}}})
    final = (await run(KubeRunner(target), event(*manifests, action=Action.DELETE, expect=expect)))[
        -1
    ]
    assert final.state is EventState.FAILED
    assert final.message.startswith("drifted: 1 of 2 objects not touched: ConfigMap/edited")
    assert final.resources is not None
    assert {r.name: r.status for r in final.resources} == {
        "gone": ResourceStatus.DELETED,
        "edited": ResourceStatus.DRIFTED,
    }
    assert data_of(api, namespace, "gone") is None
    assert data_of(api, namespace, "edited") == {"a": "1"}


async def test_what_the_policy_refused_in_the_plan_is_left_out_of_its_apply(
    target: KubeTarget, api: k8s.ApiClient, namespace: str
) -> None:
    """The plan refused the binding, so its apply holds it (not planned) and applies the rest:
    the policy judges what will be applied."""
    binding = BINDING.replace("plan-ops", f"drift-ops-{namespace}")
    manifests = (configmap("fine", namespace, a="1"), binding)
    expect = await plan_of(target, *manifests)
    final = (await run(KubeRunner(target), event(*manifests, expect=expect)))[-1]
    assert final.state is EventState.FAILED
    assert final.resources is not None
    assert {r.kind: (r.status, r.message) for r in final.resources} == {
        "ConfigMap": (ResourceStatus.CREATED, ""),
        "ClusterRoleBinding": (ResourceStatus.DRIFTED, NOT_PLANNED),
    }
    assert final.message.startswith("drifted: 1 of 2 objects not touched: ClusterRoleBinding/")
    assert data_of(api, namespace, "fine") == {"a": "1"}
