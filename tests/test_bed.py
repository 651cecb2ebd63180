"""The test bed is made of real parts: separate API servers, real server-side apply, real Redis."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import coredis
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import dynamic

from tests.bed.kube import Cluster
from tests.bed.redis import RedisServer


def api_client(cluster: Cluster) -> k8s.ApiClient:
    made = k8s_config.new_client_from_config(config_file=str(cluster.kubeconfig))  # type: ignore[no-untyped-call]
    assert isinstance(made, k8s.ApiClient)
    return made


def namespaces(api: k8s.ApiClient) -> set[str]:
    listed = k8s.CoreV1Api(api).list_namespace().items
    return {ns.metadata.name for ns in listed if ns.metadata and ns.metadata.name}


def test_a_namespace_made_in_one_cluster_is_absent_from_another(
    cluster: Cluster, cluster_factory: Callable[[], Cluster]
) -> None:
    other = cluster_factory()
    assert other.server != cluster.server
    name = f"bed-{uuid.uuid4().hex[:8]}"
    with api_client(cluster) as one, api_client(other) as two:
        k8s.CoreV1Api(one).create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
        assert name in namespaces(one)
        assert name not in namespaces(two)


def test_the_same_server_side_apply_twice_keeps_the_resource_version(cluster: Cluster) -> None:
    name = f"bed-{uuid.uuid4().hex[:8]}"
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"},
        "data": {"colour": "blue"},
    }
    with api_client(cluster) as api:
        client = dynamic.DynamicClient(api)  # type: ignore[no-untyped-call]
        configmaps = client.resources.get(api_version="v1", kind="ConfigMap")
        first = configmaps.server_side_apply(
            body=body, namespace="default", field_manager="bed", force_conflicts=True
        )
        second = configmaps.server_side_apply(
            body=body, namespace="default", field_manager="bed", force_conflicts=True
        )
        assert second.metadata.resourceVersion == first.metadata.resourceVersion
        changed = {**body, "data": {"colour": "green"}}
        third = configmaps.server_side_apply(
            body=changed, namespace="default", field_manager="bed", force_conflicts=True
        )
        assert third.metadata.resourceVersion != first.metadata.resourceVersion
        assert third.data.colour == "green"


async def test_a_coredis_round_trip_under_trio(redis_server: RedisServer) -> None:
    async with coredis.Redis.from_url(redis_server.url, decode_responses=True) as redis:
        assert await redis.set("bed:key", "value")
        assert await redis.get("bed:key") == "value"
        assert await redis.incr("bed:counter") == 1
        info = await redis.info("server")
        assert info["redis_version"]
