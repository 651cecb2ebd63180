"""KubeTarget against the session's real kube-apiserver: plan, apply, verify, delete."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import pytest
import trio
import trio.testing
import yaml

from transporter.kube import (
    KubeRejected,
    KubeTarget,
    ManifestError,
    Plan,
)
from transporter.protocol.model import ResourceResult, ResourceStatus

CREATED, UPDATED, UNCHANGED = (
    ResourceStatus.CREATED,
    ResourceStatus.UPDATED,
    ResourceStatus.UNCHANGED,
)
DELETED, NOT_FOUND, FAILED = ResourceStatus.DELETED, ResourceStatus.NOT_FOUND, ResourceStatus.FAILED


def dump(*objects: dict[str, Any]) -> str:
    return yaml.safe_dump_all(objects, sort_keys=False)


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def configmap(name: str, namespace: str | None = None, **data: str) -> dict[str, Any]:
    metadata = {"name": name} | ({"namespace": namespace} if namespace else {})
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}


def deployment(name: str, namespace: str, replicas: Any = 1) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
            },
        },
    }


def crd(group: str, kind: str, plural: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": plural[:-1], "kind": kind},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {"size": {"type": "integer"}},
                                }
                            },
                        }
                    },
                }
            ],
        },
    }


def by_name(results: Sequence[ResourceResult]) -> dict[str, ResourceResult]:
    return {f"{r.kind}/{r.name}": r for r in results}


def statuses(results: Sequence[ResourceResult]) -> dict[str, ResourceStatus]:
    return {key: result.status for key, result in by_name(results).items()}


async def apply_and_verify(target: KubeTarget, manifests: Sequence[str]) -> list[ResourceResult]:
    plan = await target.plan(manifests)
    assert plan.problems == ()
    return await target.verify(await target.apply(plan))


async def test_connect_reports_the_server_version(target: KubeTarget) -> None:
    assert target.server_version.startswith("v1.")
    assert target.source.startswith("kubeconfig ")


async def test_created_then_unchanged_then_updated(target: KubeTarget, unique: str) -> None:
    ns = f"t-{unique}"
    manifests = [
        dump(namespace(ns)),
        dump(configmap("settings", ns, colour="blue"), deployment("web", ns)),
    ]
    first = await apply_and_verify(target, manifests)
    assert statuses(first) == {
        f"Namespace/{ns}": CREATED,
        "ConfigMap/settings": CREATED,
        "Deployment/web": CREATED,
    }
    assert by_name(first)["ConfigMap/settings"].namespace == ns
    assert by_name(first)[f"Namespace/{ns}"].namespace is None

    # Also the bare Namespace, which the server rewrites once to record field ownership.
    again = await apply_and_verify(target, manifests)
    assert set(statuses(again).values()) == {UNCHANGED}

    manifests[1] = dump(configmap("settings", ns, colour="green"), deployment("web", ns))
    changed = await apply_and_verify(target, manifests)
    assert statuses(changed) == {
        f"Namespace/{ns}": UNCHANGED,
        "ConfigMap/settings": UPDATED,
        "Deployment/web": UNCHANGED,
    }


async def test_an_invalid_object_fails_with_the_servers_message_and_others_go_on(
    target: KubeTarget, unique: str
) -> None:
    ns = f"t-{unique}"
    manifests = [
        dump(
            namespace(ns),
            deployment("wrong-type", ns, replicas="x"),
            deployment("negative", ns, replicas=-1),
            configmap("fine", ns, a="b"),
            configmap("homeless", f"absent-{unique}", a="b"),
        )
    ]
    plan = await target.plan(manifests)
    applied = await target.apply(plan)
    results = by_name(await target.verify(applied))
    assert results[f"Namespace/{ns}"].status is CREATED
    assert results["ConfigMap/fine"].status is CREATED

    negative = results["Deployment/negative"]
    assert negative.status is FAILED
    assert negative.message == (
        'Deployment.apps "negative" is invalid: spec.replicas: Invalid value: -1: '
        "must be greater than or equal to 0"
    )
    error = next(a.error for a in applied if a.object.name == "negative")
    assert isinstance(error, KubeRejected)
    assert (error.code, error.reason) == (422, "Invalid")

    wrong_type = results["Deployment/wrong-type"]
    assert wrong_type.status is FAILED
    assert ".spec.replicas: expected numeric (int or float), got string" in wrong_type.message

    homeless = results["ConfigMap/homeless"]
    assert homeless.status is FAILED
    assert homeless.message == f'namespaces "absent-{unique}" not found'


async def test_an_unknown_kind_is_a_problem_naming_it_and_the_rest_is_applied(
    target: KubeTarget, unique: str
) -> None:
    group = f"u{unique}.example.com"
    widget = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w"}}
    old_apps = deployment(f"d-{unique}", "default") | {"apiVersion": "apps/v1alpha9"}
    plan = await target.plan([dump(widget, configmap(f"c-{unique}"), old_apps)])
    assert [(o.kind, o.name) for o in plan.objects] == [("ConfigMap", f"c-{unique}")]
    problems = by_name(plan.problems)
    assert problems["Widget/w"].status is FAILED
    assert problems["Widget/w"].message == (
        f'kind "Widget" ({group}/v1) is not known to the cluster (manifest 1, document 1)'
    )
    assert problems[f"Deployment/d-{unique}"].message.startswith(
        'kind "Deployment" (apps/v1alpha9) is not known to the cluster'
    )
    results = await target.verify(await target.apply(plan))
    assert statuses(results) == {f"ConfigMap/c-{unique}": CREATED}


async def test_a_crd_and_an_object_of_it_in_one_plan(target: KubeTarget, unique: str) -> None:
    group = f"c{unique}.example.com"
    gizmo = {
        "apiVersion": f"{group}/v1",
        "kind": "Gizmo",
        "metadata": {"name": "g"},
        "spec": {"size": 3},
    }
    manifests = [dump(gizmo), dump(crd(group, "Gizmo", "gizmos"))]
    plan = await target.plan(manifests)
    assert plan.problems == ()
    assert [o.kind for o in plan.objects] == ["CustomResourceDefinition", "Gizmo"]
    pending = plan.objects[1]
    assert (pending.resource, pending.crd, pending.namespace) == (
        None,
        f"gizmos.{group}",
        "default",
    )

    results = await target.verify(await target.apply(plan))
    assert statuses(results) == {
        f"CustomResourceDefinition/gizmos.{group}": CREATED,
        "Gizmo/g": CREATED,
    }

    # Now the kind is known without the CRD's help, and nothing changes.
    replan = await target.plan(manifests)
    assert replan.objects[1].resource is not None
    assert set(statuses(await target.verify(await target.apply(replan))).values()) == {UNCHANGED}


async def test_an_object_of_a_crd_that_fails_is_not_sent(target: KubeTarget, unique: str) -> None:
    group = f"b{unique}.example.com"
    broken = crd(group, "Gadget", "gadgets")
    broken["spec"]["scope"] = "Sideways"
    gadget = {"apiVersion": f"{group}/v1", "kind": "Gadget", "metadata": {"name": "g"}}
    plan = await target.plan([dump(broken, gadget)])
    results = by_name(await target.verify(await target.apply(plan)))
    crd_result = results[f"CustomResourceDefinition/gadgets.{group}"]
    assert crd_result.status is FAILED
    assert "spec.scope" in crd_result.message
    assert results["Gadget/g"].status is FAILED
    assert results["Gadget/g"].message.startswith(
        f'not applied: its CustomResourceDefinition "gadgets.{group}" failed: '
    )


async def test_a_crd_whose_names_are_taken_fails_with_the_servers_reason(
    target: KubeTarget, unique: str
) -> None:
    group = f"n{unique}.example.com"
    await apply_and_verify(target, [dump(crd(group, "Gizmo", "gizmos"))])
    clash = crd(group, "Gizmo", "others")  # the kind Gizmo is taken in this group
    [result] = await apply_and_verify(target, [dump(clash)])
    assert result.status is FAILED
    assert result.message.startswith(
        f'CustomResourceDefinition "others.{group}": names not accepted: '
    )
    assert "Gizmo" in result.message


async def test_deleting_objects_of_a_crd_that_is_not_installed_finds_nothing(
    target: KubeTarget, unique: str
) -> None:
    group = f"x{unique}.example.com"
    gizmo = {"apiVersion": f"{group}/v1", "kind": "Gizmo", "metadata": {"name": "g"}}
    plan = await target.plan([dump(crd(group, "Gizmo", "gizmos"), gizmo)])
    results = await target.delete(plan)
    assert [(r.kind, r.status) for r in results] == [
        ("Gizmo", NOT_FOUND),
        ("CustomResourceDefinition", NOT_FOUND),
    ]
    assert results[0].message == f'kind "Gizmo" ({group}/v1) is not known to the cluster'


async def test_namespaces_are_placed_by_the_scope_of_the_kind(
    target: KubeTarget, unique: str
) -> None:
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": f"r-{unique}", "namespace": "ignored"},
        "rules": [],
    }
    plan = await target.plan([dump(configmap(f"c-{unique}"), role)])
    placed = {o.kind: o for o in plan.objects}
    assert placed["ConfigMap"].namespace == "default"
    assert placed["ConfigMap"].body["metadata"]["namespace"] == "default"
    assert placed["ClusterRole"].namespace is None
    assert "namespace" not in placed["ClusterRole"].body["metadata"]
    results = by_name(await target.verify(await target.apply(plan)))
    assert results[f"ConfigMap/c-{unique}"] == ResourceResult(
        "v1", "ConfigMap", f"c-{unique}", "default", CREATED
    )
    assert results[f"ClusterRole/r-{unique}"].status is CREATED
    # The object really is in "default": deleting it there finds it.
    deleted = by_name(await target.delete(plan))
    assert deleted[f"ConfigMap/c-{unique}"].status is DELETED


async def test_plan_order_crds_then_namespaces_then_as_submitted(
    target: KubeTarget, unique: str
) -> None:
    ns = f"o-{unique}"
    group = f"o{unique}.example.com"
    plan = await target.plan(
        [
            dump(configmap("first", ns), namespace(ns), configmap("second", ns)),
            dump(crd(group, "Thing", "things")),
        ]
    )
    assert [(o.kind, o.name) for o in plan.objects] == [
        ("CustomResourceDefinition", f"things.{group}"),
        ("Namespace", ns),
        ("ConfigMap", "first"),
        ("ConfigMap", "second"),
    ]


async def test_lists_are_expanded_and_empty_documents_skipped(
    target: KubeTarget, unique: str
) -> None:
    listed = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [configmap(f"a-{unique}"), configmap(f"b-{unique}")],
    }
    typed = {
        "apiVersion": "v1",
        "kind": "ConfigMapList",
        "items": [{"metadata": {"name": f"c-{unique}"}}],
    }
    plan = await target.plan(["---\n---\n", "---\n" + dump(listed) + "---\n---\n" + dump(typed)])
    assert [o.name for o in plan.objects] == [f"a-{unique}", f"b-{unique}", f"c-{unique}"]
    results = await target.verify(await target.apply(plan))
    assert set(statuses(results).values()) == {CREATED}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("kind: [unclosed\n", "manifest 1, document 1: not valid YAML"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n", "metadata.name is missing"),
        ("- not\n- a mapping\n", "expected a mapping (an object), got a list"),
        ("a: &x [1, *x]\n", "alias *x refers to itself"),
    ],
)
async def test_invalid_manifests_fail_the_plan(
    target: KubeTarget, text: str, expected: str
) -> None:
    with pytest.raises(ManifestError) as caught:
        await target.plan([text])
    assert expected in str(caught.value)


async def test_delete_then_delete_again(target: KubeTarget, unique: str) -> None:
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": f"d-{unique}"},
        "rules": [],
    }
    manifests = [dump(role, configmap(f"d-{unique}", "default", a="b"))]
    await apply_and_verify(target, manifests)
    plan = await target.plan(manifests)
    first = await target.delete(plan)
    assert [(r.kind, r.status) for r in first] == [("ConfigMap", DELETED), ("ClusterRole", DELETED)]
    second = await target.delete(plan)
    assert [(r.kind, r.status) for r in second] == [
        ("ConfigMap", NOT_FOUND),
        ("ClusterRole", NOT_FOUND),
    ]


async def test_verify_rests_on_the_answer_and_reads_back_only_without_one(
    target: KubeTarget, unique: str
) -> None:
    """Verifying judges the apply's answer, the object as stored: one deleted after its apply
    is reported as the apply left it (a readiness wait would see it gone). An apply whose answer
    was not the object is read back: gone by then, it fails."""
    plan = await target.plan([dump(configmap(f"g-{unique}", a="b"))])
    applied = await target.apply(plan)
    await target.delete(plan)
    [result] = await target.verify(applied)
    assert result.status is CREATED
    [result] = await target.verify([attrs.evolve(applied[0], version_after=None)])
    assert result.status is FAILED
    assert result.message == "applied, but gone when read back"


async def test_plans_can_run_concurrently(target: KubeTarget, unique: str) -> None:
    results: dict[int, list[ResourceResult]] = {}

    async def one(n: int) -> None:
        plan: Plan = await target.plan([dump(configmap(f"p{n}-{unique}", a=str(n)))])
        results[n] = await target.verify(await target.apply(plan))

    async with trio.open_nursery() as nursery:
        for n in range(6):
            nursery.start_soon(one, n)
    assert all(r[0].status is CREATED for r in results.values())
    assert len(results) == 6


async def test_short_manifests_are_parsed_on_the_loop_long_ones_in_a_thread(
    target: KubeTarget, unique: str
) -> None:
    """A worker thread's two hops cost more than parsing one small object: short manifests
    are parsed at once; long ones (up to megabytes) wait for a parsing thread."""
    from transporter.kube.target import INLINE_PARSE_BYTES, PARSE_THREADS

    short = dump(configmap(f"short-{unique}", "default", a="1"))
    long = dump(configmap(f"long-{unique}", "default", a="x" * INLINE_PARSE_BYTES))
    limiter = target._parse_limiter
    borrowers = [object() for _ in range(PARSE_THREADS)]
    for borrower in borrowers:
        await limiter.acquire_on_behalf_of(borrower)
    with trio.fail_after(10):
        plan = await target.plan([short])  # no thread needed
    assert [obj.name for obj in plan.objects] == [f"short-{unique}"]
    planned: list[Plan] = []

    async def plan_long() -> None:
        planned.append(await target.plan([long]))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(plan_long)
        await trio.testing.wait_all_tasks_blocked()
        assert planned == []  # the long one waits for a thread
        assert limiter.statistics().tasks_waiting == 1
        for borrower in borrowers:
            limiter.release_on_behalf_of(borrower)
    assert [obj.name for obj in planned[0].objects] == [f"long-{unique}"]
