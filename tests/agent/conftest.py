"""The agent's runner on a real API server: a :class:`KubeTarget`, the official client to look
with, and an event run start to end."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.bed.controllers import api_client, new_namespace
from tests.bed.kube import Cluster
from tests.bed.sink import RecordingSink
from transporter.agent.kube_runner import KubeRunner
from transporter.agent.worker import Reporter
from transporter.kube import KubeTarget
from transporter.protocol.messages import Status
from transporter.protocol.model import Action, Event, K8sPayload


@pytest.fixture
async def target(cluster: Cluster) -> AsyncIterator[KubeTarget]:
    async with KubeTarget.connect(cluster.kubeconfig, timeout=10.0) as connected:
        yield connected


@pytest.fixture
def api(cluster: Cluster) -> Iterator[k8s.ApiClient]:
    with api_client(cluster) as made:
        yield made


@pytest.fixture
def namespace(api: k8s.ApiClient) -> str:
    return new_namespace(api, "agent")


def event(*manifests: str, action: Action = Action.APPLY, **payload: Any) -> Event:
    return Event(
        id="e1",
        target_agent="a",
        payload=K8sPayload(tuple(manifests), action, **payload),
        ttl=600,
        created_at=0,
    )


async def run(runner: KubeRunner, one: Event) -> list[Status]:
    """Every report of ``one``, in order (the last is final)."""
    sink = RecordingSink()
    await runner(one, Reporter(one.id, sink))
    assert sink.reports[-1].state.terminal
    return sink.reports


def raw(api: k8s.ApiClient, path: str) -> dict[str, Any] | None:
    """The object at ``path`` as the API server sends it (JSON); ``None``: not found."""
    method, url, headers, body, post = api.param_serialize(
        "GET", path, header_params={"Accept": "application/json"}, auth_settings=["BearerToken"]
    )
    answer: Any = api.call_api(method, url, headers, body, post)
    answer.read()
    if answer.status == 404:
        return None
    assert answer.status == 200, answer.data
    found = json.loads(answer.data)
    assert isinstance(found, dict)
    return found


def configmap(name: str, namespace: str, **data: str) -> str:
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": data,
    }
    return json.dumps(body)
