"""Applying a plan on a real API server, drift judged by what the apply sets: a field the
manifest leaves to others (replicas an autoscaler scales, a label someone adds) may change since
the plan; a field it sets, the object going or coming may not. An object named twice, and a plan's
apply delivered again after the agent was killed mid-apply."""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client as k8s

from tests.agent.conftest import configmap, event, raw, run
from tests.agent.test_drift import data_of, expect_of, plan_of
from transporter.agent.kube_runner import KubeRunner
from transporter.kube import KubeTarget
from transporter.kube.fingerprint import CHANGED
from transporter.protocol.model import Action, EventState, ResourceStatus


def deployment(name: str, namespace: str, image: str) -> str:
    labels = {"app": name}
    pod = {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": image}]}}
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": {"matchLabels": labels}, "template": pod},
    }
    return json.dumps(body)


def apps(api: k8s.ApiClient) -> Any:
    return k8s.AppsV1Api(api)


def image_of(api: k8s.ApiClient, namespace: str, name: str) -> str:
    found = raw(api, f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
    assert found is not None
    return str(found["spec"]["template"]["spec"]["containers"][0]["image"])


async def test_what_the_manifest_leaves_to_others_may_change_since_the_plan(
    target: KubeTarget, api: k8s.ApiClient, namespace: str
) -> None:
    """An autoscaler scales a Deployment whose manifest sets no replicas, someone labels a
    ConfigMap: the plan's apply applies both; an image set by hand, a ConfigMap deleted and one
    created since are drifted and left as they are."""
    await run(
        KubeRunner(target),
        event(
            deployment("scaled", namespace, "web:1"),
            deployment("edited", namespace, "web:1"),
            configmap("labelled", namespace, a="1"),
            configmap("deleted", namespace, a="1"),
        ),
    )
    planned = (
        deployment("scaled", namespace, "web:2"),
        deployment("edited", namespace, "web:2"),
        configmap("labelled", namespace, a="2"),
        configmap("deleted", namespace, a="2"),
        configmap("created", namespace, a="2"),
    )
    expect = await plan_of(target, *planned)
    apps(api).patch_namespaced_deployment_scale("scaled", namespace, {"spec": {"replicas": 5}})
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "by:hand"}]}}}}
    apps(api).patch_namespaced_deployment("edited", namespace, patch)
    core = k8s.CoreV1Api(api)
    core.patch_namespaced_config_map("labelled", namespace, {"metadata": {"labels": {"x": "y"}}})
    core.delete_namespaced_config_map("deleted", namespace)
    created: Any = {"metadata": {"name": "created"}, "data": {}}
    core.create_namespaced_config_map(namespace, created)
    final = (await run(KubeRunner(target), event(*planned, expect=expect)))[-1]
    assert final.resources is not None
    assert {r.name: (r.status, r.message) for r in final.resources} == {
        "scaled": (ResourceStatus.UPDATED, ""),
        "edited": (ResourceStatus.DRIFTED, CHANGED),
        "labelled": (ResourceStatus.UPDATED, ""),
        "deleted": (ResourceStatus.DRIFTED, CHANGED),
        "created": (ResourceStatus.DRIFTED, CHANGED),
    }
    assert final.state is EventState.FAILED
    assert image_of(api, namespace, "scaled") == "web:2"
    scale = apps(api).read_namespaced_deployment_scale("scaled", namespace)
    assert scale.spec.replicas == 5, "the apply sets no replicas: the autoscaler's stay"
    assert image_of(api, namespace, "edited") == "by:hand"
    assert data_of(api, namespace, "labelled") == {"a": "2"}
    assert data_of(api, namespace, "deleted") is None
    assert data_of(api, namespace, "created") == {}


async def test_an_object_twice_in_a_plan_is_planned_and_applied_once(
    target: KubeTarget, api: k8s.ApiClient, namespace: str
) -> None:
    """Its second mention fails in the plan and in the plan's apply, where its first is applied
    (not drifted by its own apply); an ordinary apply applies both, as it always did."""
    manifests = (configmap("twice", namespace, a="1"), configmap("twice", namespace, a="2"))
    plan = (await run(KubeRunner(target), event(*manifests, action=Action.PLAN)))[-1]
    assert plan.state is EventState.COMPLETED, plan.message
    assert plan.resources is not None
    why = "the same object twice in this event (manifest 1, document 1 and manifest 2, document 1)"
    assert [(r.status, r.message) for r in plan.resources] == [
        (ResourceStatus.WOULD_CREATE, ""),
        (ResourceStatus.FAILED, why),
    ]
    final = await run(KubeRunner(target), event(*manifests, expect=expect_of(plan.resources)))
    assert final[-1].resources is not None
    assert [(r.status, r.message) for r in final[-1].resources] == [
        (ResourceStatus.FAILED, why),
        (ResourceStatus.CREATED, ""),
    ]
    assert data_of(api, namespace, "twice") == {"a": "1"}
    ordinary = (await run(KubeRunner(target), event(*manifests)))[-1]
    assert ordinary.state is EventState.COMPLETED, ordinary.message
    assert data_of(api, namespace, "twice") == {"a": "2"}


async def test_a_plans_apply_delivered_again_finds_what_it_wrote(
    target: KubeTarget, api: k8s.ApiClient, namespace: str
) -> None:
    """The agent killed mid-apply wrote some objects; the apply delivered again finds them as it
    would leave them: unchanged, not drifted (a delete's: not found)."""
    old: Any = {"metadata": {"name": "old"}, "data": {"a": "1"}}
    k8s.CoreV1Api(api).create_namespaced_config_map(namespace, old)
    manifests = (configmap("new", namespace, a="1"), configmap("old", namespace, a="2"))
    expect = await plan_of(target, *manifests)
    await run(KubeRunner(target), event(*manifests))  # what the first delivery wrote
    final = (await run(KubeRunner(target), event(*manifests, expect=expect)))[-1]
    assert final.state is EventState.COMPLETED, final.message
    assert final.resources is not None
    assert [(r.name, r.status) for r in final.resources] == [
        ("new", ResourceStatus.UNCHANGED),
        ("old", ResourceStatus.UNCHANGED),
    ]
    expect = await plan_of(target, *manifests, plan_of=Action.DELETE)
    await run(KubeRunner(target), event(manifests[0], action=Action.DELETE))
    final = (await run(KubeRunner(target), event(*manifests, action=Action.DELETE, expect=expect)))[
        -1
    ]
    assert final.state is EventState.COMPLETED, final.message
    assert final.resources is not None
    assert {r.name: r.status for r in final.resources} == {
        "new": ResourceStatus.NOT_FOUND,
        "old": ResourceStatus.DELETED,
    }
    assert data_of(api, namespace, "old") is None
