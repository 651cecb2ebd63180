"""An event's whole path: produce → control plane → agent → real API server, and back."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from kubernetes import client as k8s

from tests.bed.harness import Agent, ControlPlane, finish, read, statuses, submit_and_wait
from tests.bed.kube import Cluster
from tests.bed.manifests import configmap_yaml, deployment_yaml, event_body, namespace_yaml, unique
from transporter.produce.client import ApiError
from transporter.protocol.model import EventState, Phase, ResourceStatus


async def test_apply_on_one_cluster_leaves_the_other_untouched(
    cp: ControlPlane, make_agent: Callable[..., Agent], cluster: Cluster, second_cluster: Cluster
) -> None:
    one, two = make_agent(cluster), make_agent(second_cluster)
    await one.start(cp.agent_url)
    await two.start(cp.agent_url)
    await one.connected()
    await two.connected()
    ns, cm, deploy = unique("ns"), unique("cm"), unique("web")
    manifests = (
        namespace_yaml(ns),
        configmap_yaml(cm, ns, colour="blue"),
        deployment_yaml(deploy, ns),
    )
    record = await submit_and_wait(cp, event_body(one.agent_id, *manifests))
    assert record.state is EventState.COMPLETED, record.message
    assert statuses(record) == {
        ("Namespace", ns): ResourceStatus.CREATED,
        ("ConfigMap", cm): ResourceStatus.CREATED,
        ("Deployment", deploy): ResourceStatus.CREATED,
    }
    phases = [entry.phase for entry in record.timeline if entry.phase]
    assert phases == [
        Phase.RECEIVED,
        Phase.VALIDATING,
        Phase.APPLYING,
        Phase.VERIFYING,
        Phase.COMPLETED,
    ]
    # One host, one clock: the control plane's stamps and the agent's (its receipt too) are
    # in the order they happened.
    times = [entry.at for entry in record.timeline]
    assert times == sorted(times)
    configmap = await read(
        cluster, lambda api: k8s.CoreV1Api(api).read_namespaced_config_map(cm, ns)
    )
    assert configmap.data == {"colour": "blue"}
    assert await read(second_cluster, lambda api: k8s.CoreV1Api(api).read_namespace(ns)) is None
    assert two.session is not None and not two.session.worker.finished

    again = await submit_and_wait(cp, event_body(one.agent_id, *manifests))
    assert again.state is EventState.COMPLETED
    assert set(statuses(again).values()) == {ResourceStatus.UNCHANGED}


async def test_invalid_yaml_is_refused_and_nothing_is_stored(cp: ControlPlane) -> None:
    event_id = unique("bad")
    with pytest.raises(ApiError) as caught:
        await cp.client.submit(
            {
                "id": event_id,
                "target_agent": "someone",
                "payload": {"manifests": ["kind: [unclosed"]},
            }
        )
    assert caught.value.status == 400
    assert caught.value.field == "payload.manifests[0]"
    with pytest.raises(ApiError) as missing:
        await cp.client.event(event_id)
    assert missing.value.status == 404
    assert await cp.client.events() == []


async def test_an_unknown_kind_fails_the_event_and_the_rest_is_reported(
    cp: ControlPlane, make_agent: Callable[..., Agent], cluster: Cluster
) -> None:
    agent = make_agent(cluster)
    await agent.start(cp.agent_url)
    cm = unique("cm")
    widget = "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n"
    record = await submit_and_wait(cp, event_body(agent.agent_id, configmap_yaml(cm, None), widget))
    assert record.state is EventState.FAILED
    assert "Widget" in record.message
    results = statuses(record)
    assert results[("Widget", "w")] is ResourceStatus.FAILED
    assert results[("ConfigMap", cm)] is ResourceStatus.CREATED
    failed = next(r for r in record.resources if r.kind == "Widget")
    assert "Widget" in failed.message


async def test_an_agent_offline_at_submission_gets_the_event_when_it_starts(
    cp: ControlPlane, make_agent: Callable[..., Agent], cluster: Cluster
) -> None:
    agent = make_agent(cluster)
    cm = unique("cm")
    submitted = await cp.client.submit(event_body(agent.agent_id, configmap_yaml(cm, None)))
    assert not submitted.agent_known
    assert (await cp.client.event(submitted.event_id)).state is EventState.QUEUED
    await agent.start(cp.agent_url)
    record = await finish(cp, submitted.event_id)
    assert record.state is EventState.COMPLETED
    assert statuses(record) == {("ConfigMap", cm): ResourceStatus.CREATED}


async def test_an_event_whose_ttl_passes_while_offline_expires_unapplied(
    cp: ControlPlane, make_agent: Callable[..., Agent], cluster: Cluster
) -> None:
    agent = make_agent(cluster)
    cm = unique("cm")
    submitted = await cp.client.submit(event_body(agent.agent_id, configmap_yaml(cm, None), ttl=1))
    record = await finish(cp, submitted.event_id)
    assert record.state is EventState.EXPIRED
    await agent.start(cp.agent_url)
    await agent.connected()
    # The agent is connected and its outbox has been read: the expired event is not sent.
    other = await submit_and_wait(
        cp, event_body(agent.agent_id, configmap_yaml(unique("cm"), None))
    )
    assert other.state is EventState.COMPLETED
    assert agent.session is not None
    assert submitted.event_id not in agent.session.worker.finished
    assert (
        await read(
            cluster, lambda api: k8s.CoreV1Api(api).read_namespaced_config_map(cm, "default")
        )
        is None
    )


async def test_delete_removes_objects_and_reports_missing_ones(
    cp: ControlPlane, make_agent: Callable[..., Agent], cluster: Cluster
) -> None:
    agent = make_agent(cluster)
    await agent.start(cp.agent_url)
    cm = unique("cm")
    created = await submit_and_wait(cp, event_body(agent.agent_id, configmap_yaml(cm, None)))
    assert created.state is EventState.COMPLETED
    body = event_body(agent.agent_id, configmap_yaml(cm, None))
    body["payload"]["action"] = "delete"
    deleted = await submit_and_wait(cp, body)
    assert deleted.state is EventState.COMPLETED
    assert statuses(deleted) == {("ConfigMap", cm): ResourceStatus.DELETED}
    assert (
        await read(
            cluster, lambda api: k8s.CoreV1Api(api).read_namespaced_config_map(cm, "default")
        )
        is None
    )
    again = await submit_and_wait(cp, body)
    assert statuses(again) == {("ConfigMap", cm): ResourceStatus.NOT_FOUND}


async def test_a_crd_and_an_object_of_it_in_one_event(
    cp: ControlPlane, make_agent: Callable[..., Agent], cluster: Cluster
) -> None:
    agent = make_agent(cluster)
    await agent.start(cp.agent_url)
    group = f"{uuid.uuid4().hex[:8]}.example.com"
    crd = f"""apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.{group}
spec:
  group: {group}
  scope: Namespaced
  names: {{plural: gadgets, singular: gadget, kind: Gadget}}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {{type: integer}}
"""
    gadget = f"apiVersion: {group}/v1\nkind: Gadget\nmetadata:\n  name: g1\nspec:\n  size: 3\n"
    # The object comes first in the event: the agent still applies the CRD first.
    record = await submit_and_wait(cp, event_body(agent.agent_id, gadget, crd))
    assert record.state is EventState.COMPLETED, record.message
    assert statuses(record) == {
        ("CustomResourceDefinition", f"gadgets.{group}"): ResourceStatus.CREATED,
        ("Gadget", "g1"): ResourceStatus.CREATED,
    }


async def test_a_repeated_id_is_idempotent_and_a_changed_one_conflicts(cp: ControlPlane) -> None:
    body = event_body("nobody-yet", configmap_yaml("c", None), id=unique("fixed"))
    first = await cp.client.submit(body)
    again = await cp.client.submit(body)
    assert first.created and not again.created
    assert again.event_id == first.event_id
    changed = {**body, "payload": {"manifests": [configmap_yaml("d", None)]}}
    with pytest.raises(ApiError) as caught:
        await cp.client.submit(changed)
    assert caught.value.status == 409
    assert len(await cp.client.events()) == 1


async def test_a_batch_keeps_the_good_events_and_names_the_bad(cp: ControlPlane) -> None:
    taken = unique("taken")
    await cp.client.submit(event_body("agent-x", configmap_yaml("a", None), id=taken))
    answer = await cp.client.submit_batch(
        [
            event_body("agent-x", configmap_yaml("b", None)),
            event_body("agent-x", "kind: [unclosed"),
            event_body("agent-y", configmap_yaml("c", None), id=taken),  # same id, other content
            event_body("agent-x", configmap_yaml("a", None), id=taken),  # the same again
        ]
    )
    results = answer["results"]
    assert (answer["accepted"], answer["refused"]) == (2, 2)
    assert results[0]["status"] == "accepted"
    assert results[1]["error"] == "invalid_event"
    assert results[1]["field"] == "payload.manifests[0]"
    assert results[2]["error"] == "conflict"
    assert results[3] == {"event_id": taken, "status": "exists", "agent_known": False}
    stored = {record.event.id for record in await cp.client.events()}
    assert stored == {taken, results[0]["event_id"]}
    with pytest.raises(ApiError) as caught:
        await cp.client.submit_batch([])
    assert caught.value.status == 400
