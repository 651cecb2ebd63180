"""One API call per object on the hot path, on a real API server: each verdict (created,
updated, unchanged, failed) with the calls it took, counted as the transport sends them.

An object applied before through the same target is applied over the version that apply left
(one PATCH); one not remembered (the agent just started) is read first (GET, PATCH); one
written by someone else since is refused as such and read (PATCH 409, GET, PATCH). Verifying
judges the apply's answer and sends nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import trio

from tests.bed.kube import Cluster
from transporter.kube import KubeTarget, KubeUnavailable, RetryPolicy
from transporter.kube.apply import apply_plan
from transporter.kube.client import Answer, HttpClient
from transporter.kube.credentials import load
from transporter.kube.discovery import Discovery
from transporter.kube.fingerprint import fingerprint
from transporter.kube.remembered import LastSeen, Stored, last_seen
from transporter.kube.transport import Transport
from transporter.protocol.model import ResourceStatus, object_key

CREATED, UPDATED, UNCHANGED, FAILED = (
    ResourceStatus.CREATED,
    ResourceStatus.UPDATED,
    ResourceStatus.UNCHANGED,
    ResourceStatus.FAILED,
)
PATCH, PATCH_REFUSED = ("patch", "2xx"), ("patch", "4xx")
GET, GET_NOT_FOUND = ("get", "2xx"), ("get", "4xx")
MERGE = "application/merge-patch+json"


class Calls:
    """Every request the target sends, as ``(verb, outcome)`` (outcome: ``2xx``, ``4xx``…)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def kube_answered(self, verb: str, seconds: float, outcome: str) -> None:
        self.seen.append((verb, outcome))

    def kube_retried(self, verb: str) -> None:
        pass

    def take(self) -> list[tuple[str, str]]:
        taken, self.seen = self.seen, []
        return taken


def configmap(name: str, namespace: str = "default", **data: str) -> dict[str, Any]:
    meta = {"name": name, "namespace": namespace}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def deployment(name: str, replicas: int = 1) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
            },
        },
    }


Said = tuple[ResourceStatus, str]
"""A result's status and message."""


async def applied(
    target: KubeTarget, calls: Calls, obj: Mapping[str, Any]
) -> tuple[Said, list[tuple[str, str]]]:
    """Apply and verify one object: its result, and the calls both phases took."""
    plan = await target.plan([json.dumps(obj)])
    calls.take()  # discovery, the first time a kind is planned
    [result] = await target.verify(await target.apply(plan))
    return (result.status, result.message), calls.take()


def counted(target: KubeTarget) -> Calls:
    calls = Calls()
    target.observe(calls)
    return calls


async def write_as_someone_else(
    target: KubeTarget, path: str, patch: Mapping[str, Any], *, status: bool = False
) -> None:
    await target._transport.request(
        "PATCH",
        path + ("/status" if status else ""),
        query=[("fieldManager", "someone-else")],
        body=patch,
        content_type=MERGE,
    )


def cm_path(name: str) -> str:
    return f"/api/v1/namespaces/default/configmaps/{name}"


async def test_created_then_unchanged_then_updated_take_one_call_each(
    target: KubeTarget, unique: str
) -> None:
    calls = counted(target)
    name = f"c-{unique}"
    # Nothing remembered: read first.
    assert await applied(target, calls, configmap(name, n="1")) == (
        (CREATED, ""),
        [GET_NOT_FOUND, PATCH],
    )
    assert await applied(target, calls, configmap(name, n="1")) == ((UNCHANGED, ""), [PATCH])
    assert await applied(target, calls, configmap(name, n="1")) == ((UNCHANGED, ""), [PATCH])
    assert await applied(target, calls, configmap(name, n="2")) == ((UPDATED, ""), [PATCH])
    assert await applied(target, calls, configmap(name, n="2")) == ((UNCHANGED, ""), [PATCH])
    seen = await target._transport.get(cm_path(name))
    assert seen["data"] == {"n": "2"}


async def test_the_first_apply_after_the_agent_starts_reads_once(
    cluster: Cluster, target: KubeTarget, unique: str
) -> None:
    same, changed = f"s-{unique}", f"u-{unique}"
    await applied(target, counted(target), configmap(same, n="1"))
    await applied(target, counted(target), configmap(changed, n="1"))
    async with KubeTarget.connect(cluster.kubeconfig, timeout=10.0) as restarted:
        calls = counted(restarted)
        assert await applied(restarted, calls, configmap(same, n="1")) == (
            (UNCHANGED, ""),
            [GET, PATCH],
        )
        assert await applied(restarted, calls, configmap(changed, n="2")) == (
            (UPDATED, ""),
            [GET, PATCH],
        )
        assert await applied(restarted, calls, configmap(same, n="1")) == (
            (UNCHANGED, ""),
            [PATCH],
        )


async def test_an_object_written_by_someone_else_between_our_applies(
    target: KubeTarget, unique: str
) -> None:
    calls = counted(target)
    ours, labelled = f"o-{unique}", f"l-{unique}"
    await applied(target, calls, configmap(ours, n="1"))
    await applied(target, calls, configmap(labelled, n="1"))

    # Our field changed by another writer: our apply puts it back, an update.
    await write_as_someone_else(target, cm_path(ours), {"data": {"n": "theirs"}})
    assert await applied(target, calls, configmap(ours, n="1")) == (
        (UPDATED, ""),
        [PATCH_REFUSED, GET, PATCH],
    )
    assert await applied(target, calls, configmap(ours, n="1")) == ((UNCHANGED, ""), [PATCH])

    # A field that is not ours: our apply changes nothing.
    await write_as_someone_else(target, cm_path(labelled), {"metadata": {"labels": {"x": "y"}}})
    assert await applied(target, calls, configmap(labelled, n="1")) == (
        (UNCHANGED, ""),
        [PATCH_REFUSED, GET, PATCH],
    )
    # The same, and our own change with it: an update.
    await write_as_someone_else(target, cm_path(labelled), {"metadata": {"labels": {"x": "z"}}})
    assert await applied(target, calls, configmap(labelled, n="2")) == (
        (UPDATED, ""),
        [PATCH_REFUSED, GET, PATCH],
    )


async def test_an_object_deleted_or_made_anew_by_someone_else_between_our_applies(
    target: KubeTarget, unique: str
) -> None:
    calls = counted(target)
    name = f"d-{unique}"
    await applied(target, calls, configmap(name, n="1"))
    await target._transport.request("DELETE", cm_path(name))
    # Gone: the apply over the remembered version makes it anew (201).
    assert await applied(target, calls, configmap(name, n="1")) == ((CREATED, ""), [PATCH])

    await target._transport.request("DELETE", cm_path(name))
    other = configmap(name, n="1")
    await target._transport.request("POST", "/api/v1/namespaces/default/configmaps", body=other)
    calls.take()
    # Made anew as we would: another version, so read; the same content, so unchanged.
    assert await applied(target, calls, configmap(name, n="1")) == (
        (UNCHANGED, ""),
        [PATCH_REFUSED, GET, PATCH],
    )


async def test_a_bare_namespace_applied_twice_is_unchanged_though_the_server_writes_it(
    target: KubeTarget, unique: str
) -> None:
    calls = counted(target)
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"n-{unique}"}}
    plan = await target.plan([json.dumps(namespace)])
    calls.take()
    versions = []
    for expected, sent in [
        (CREATED, [GET_NOT_FOUND, PATCH]),
        (UNCHANGED, [PATCH]),
        (UNCHANGED, [PATCH]),
    ]:
        [one] = await target.apply(plan)
        [result] = await target.verify([one])
        assert (result.status, calls.take()) == (expected, sent)
        versions.append((one.version_before, one.version_after))
    # The second apply wrote (field ownership only); the third wrote nothing.
    assert versions[1][0] != versions[1][1]
    assert versions[2][0] == versions[2][1]


async def test_status_written_by_a_controller_between_our_applies_is_no_change(
    target: KubeTarget, unique: str
) -> None:
    calls = counted(target)
    name = f"w-{unique}"
    await applied(target, calls, deployment(name))
    path = f"/apis/apps/v1/namespaces/default/deployments/{name}"
    await write_as_someone_else(target, path, {"status": {"replicas": 1}}, status=True)
    assert await applied(target, calls, deployment(name)) == (
        (UNCHANGED, ""),
        [PATCH_REFUSED, GET, PATCH],
    )
    assert await applied(target, calls, deployment(name, replicas=2)) == ((UPDATED, ""), [PATCH])


async def test_a_failed_apply_has_the_servers_message_and_nothing_is_read_back(
    target: KubeTarget, unique: str
) -> None:
    calls = counted(target)
    name = f"f-{unique}"
    invalid = (
        f'Deployment.apps "{name}" is invalid: spec.replicas: Invalid value: -1: '
        "must be greater than or equal to 0"
    )
    assert await applied(target, calls, deployment(name, replicas=-1)) == (
        (FAILED, invalid),
        [GET_NOT_FOUND, PATCH_REFUSED],
    )
    await applied(target, calls, deployment(name))
    assert await applied(target, calls, deployment(name, replicas=-1)) == (
        (FAILED, invalid),
        [PATCH_REFUSED],
    )
    # What the failed apply did not change is still remembered.
    assert await applied(target, calls, deployment(name)) == ((UNCHANGED, ""), [PATCH])


async def test_applying_a_plan_keeps_its_read(target: KubeTarget, unique: str) -> None:
    """A plan's apply reads first to check the object is as planned, remembered or not."""
    calls = counted(target)
    name = f"p-{unique}"
    await applied(target, calls, configmap(name, n="1"))
    seen = await target._transport.get(cm_path(name))
    plan = await target.plan([json.dumps(configmap(name, n="2"))])
    obj = plan.objects[0]
    expect = {
        object_key(obj.api_version, obj.kind, obj.namespace, obj.name): fingerprint(seen, obj.body)
    }
    calls.take()
    [result] = await target.verify(await target.apply(plan, expect=expect))
    assert (result.status, calls.take()) == (UPDATED, [GET, PATCH])


class LosingAnswers(HttpClient):
    """The real client, but the answers to the next ``lose`` PATCHes are lost after the API
    server acted on them (as when the connection breaks just then)."""

    lose = 0

    def request(
        self,
        method: str,
        target: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: float,
    ) -> Answer:
        answer = super().request(method, target, headers=headers, body=body, timeout=timeout)
        if method == "PATCH" and self.lose > 0:
            self.lose -= 1
            raise KubeUnavailable("the connection was reset before the answer came")
        return answer


async def test_an_apply_whose_answer_was_lost_is_judged_by_what_it_did(
    cluster: Cluster, target: KubeTarget, unique: str
) -> None:
    client = LosingAnswers(load(cluster.kubeconfig).configuration, max_idle=2)
    retry = RetryPolicy(first_delay=0.0)  # what is retried is the point, not when
    # In threads: the answers are lost by the thread client above.
    transport = Transport(
        client, timeout=10.0, limiter=trio.CapacityLimiter(2), retry=retry, native=False
    )
    calls = Calls()
    transport.observer = calls
    discovery = Discovery(transport)
    memory = LastSeen()
    name = f"x-{unique}"

    async def apply(n: str) -> tuple[ResourceStatus, list[tuple[str, str]]]:
        plan = await target.plan([json.dumps(configmap(name, n=n))])
        [one] = await apply_plan(transport, discovery, plan, crd_timeout=10.0, memory=memory)
        [result] = await target.verify([one])
        return result.status, calls.take()

    try:
        assert (await apply("1"))[0] is CREATED
        client.lose = 1  # the update is made, its answer lost: sent again, it is a conflict
        assert await apply("2") == (UPDATED, [("patch", "error"), PATCH_REFUSED, PATCH])
        client.lose = 1  # nothing to change: sent again, it goes through
        assert await apply("2") == (UNCHANGED, [("patch", "error"), PATCH])
        assert await apply("2") == (UNCHANGED, [PATCH])
        await transport.request("DELETE", cm_path(name))
        calls.take()
        client.lose = 1  # made anew (201), the answer lost: sent again, it is a conflict
        assert await apply("2") == (CREATED, [("patch", "error"), PATCH_REFUSED, PATCH])
        assert await apply("2") == (UNCHANGED, [PATCH])
    finally:
        transport.close()


def test_last_seen_forgets_the_least_recently_used() -> None:
    memory = LastSeen(size=2)
    a, b, c = (Stored(str(n), bytes(16)) for n in range(3))
    memory.put("/a", a)
    memory.put("/b", b)
    assert memory.get("/a") == a  # now the most recently used
    memory.put("/c", c)
    assert (memory.get("/a"), memory.get("/b"), memory.get("/c")) == (a, None, c)
    memory.put("/a", None)
    assert (memory.get("/a"), len(memory)) == (None, 1)


async def test_the_memory_is_the_targets(target: KubeTarget, unique: str) -> None:
    await applied(target, counted(target), configmap(f"m-{unique}", n="1"))
    memory = last_seen(target._transport)
    assert memory.get(cm_path(f"m-{unique}")) is not None


def service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"ports": [{"port": 80}], "selector": {"app": name}},
    }


async def test_a_service_deleted_by_someone_else_between_our_applies_is_made_anew(
    target: KubeTarget, unique: str
) -> None:
    calls = counted(target)
    name = f"s-{unique}"
    await applied(target, calls, service(name))
    await target._transport.request("DELETE", f"/api/v1/namespaces/default/services/{name}")
    # Gone: the apply over the remembered version makes it anew, ClusterIP and all (201).
    assert await applied(target, calls, service(name)) == ((CREATED, ""), [PATCH])
