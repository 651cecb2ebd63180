"""Applying a plan at the kube layer, on a real API server: an object is applied (or deleted)
only while its fingerprint is the plan's, and only over the version read, so a write between
our read and our apply is a conflict (then read and checked again), never overwritten."""

from __future__ import annotations

import json
from typing import Any

import pytest

from transporter.kube import KubeRejected, KubeTarget, Plan
from transporter.kube.apply import _locked
from transporter.kube.fingerprint import CHANGED, NOT_PLANNED, fingerprint
from transporter.kube.inspect import apply_query
from transporter.kube.transport import APPLY_PATCH
from transporter.protocol.model import ABSENT, ResourceStatus, object_key


def configmap(name: str, namespace: str, **data: str) -> str:
    meta = {"name": name, "namespace": namespace}
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data})


async def setup(target: KubeTarget, unique: str, *names: str) -> tuple[str, Plan]:
    namespace = f"expect-{unique}"
    ns = json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    await target.apply(await target.plan([ns, *(configmap(n, namespace, a="1") for n in names)]))
    return namespace, await target.plan([configmap(n, namespace, a="2") for n in names])


async def live(target: KubeTarget, plan: Plan, index: int) -> dict[str, Any] | None:
    seen = await target.current(plan.objects[index])
    return None if seen.body is None else dict(seen.body)


def key(plan: Plan, index: int) -> str:
    obj = plan.objects[index]
    return object_key(obj.api_version, obj.kind, obj.namespace, obj.name)


async def test_apply_only_what_is_as_planned(target: KubeTarget, unique: str) -> None:
    _, plan = await setup(target, unique, "same", "stale", "unlisted")
    expect = {
        key(plan, 0): fingerprint(await live(target, plan, 0), plan.objects[0].body),
        key(plan, 1): "0" * 32,
    }
    before = [await live(target, plan, i) for i in range(3)]
    results = await target.verify(await target.apply(plan, expect=expect))
    assert [(r.name, r.status, r.message) for r in results] == [
        ("same", ResourceStatus.UPDATED, ""),
        ("stale", ResourceStatus.DRIFTED, CHANGED),
        ("unlisted", ResourceStatus.DRIFTED, NOT_PLANNED),
    ]
    assert [await live(target, plan, i) for i in (1, 2)] == before[1:]


async def test_delete_only_what_is_as_planned(target: KubeTarget, unique: str) -> None:
    namespace, plan = await setup(target, unique, "same", "stale", "unlisted")
    gone = (await target.plan([configmap("gone", namespace)])).objects[0]
    plan = Plan((*plan.objects, gone))
    expect = {
        key(plan, 0): fingerprint(await live(target, plan, 0), None),
        key(plan, 1): "0" * 32,
        key(plan, 3): ABSENT,
    }
    results = await target.delete(plan, expect=expect)
    assert [(r.name, r.status, r.message) for r in results] == [
        ("gone", ResourceStatus.NOT_FOUND, ""),
        ("unlisted", ResourceStatus.DRIFTED, NOT_PLANNED),
        ("stale", ResourceStatus.DRIFTED, CHANGED),
        ("same", ResourceStatus.DELETED, ""),
    ]
    assert await live(target, plan, 0) is None
    assert await live(target, plan, 1) is not None and await live(target, plan, 2) is not None


async def test_an_apply_over_an_outdated_read_is_a_conflict(
    target: KubeTarget, unique: str
) -> None:
    """What the apply's lock rests on: the API server refuses a server-side apply that names a
    resourceVersion other than the object's (here: written after our read)."""
    _, plan = await setup(target, unique, "raced")
    obj = plan.objects[0]
    read = await live(target, plan, 0)
    assert read is not None and obj.resource is not None
    await target.apply(await target.plan([configmap("raced", obj.namespace or "", a="other")]))
    path = obj.resource.object_path(obj.name, obj.namespace)
    with pytest.raises(KubeRejected) as refused:
        await target._transport.request(
            "PATCH",
            path,
            query=apply_query(),
            body=_locked(obj.body, read["metadata"]["resourceVersion"]),
            content_type=APPLY_PATCH,
        )
    assert refused.value.code == 409
    now = await live(target, plan, 0)
    assert now is not None and now["data"] == {"a": "other"}
