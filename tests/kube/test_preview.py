"""Previews on a real API server beyond what the agent's plan tests cover: a delete's preview,
and a custom object whose CRD comes with the same plan."""

from __future__ import annotations

from transporter.kube import KubeTarget
from transporter.kube.fingerprint import fingerprint
from transporter.protocol.model import ABSENT, ResourceStatus


async def test_a_delete_preview_says_what_exists(target: KubeTarget, unique: str) -> None:
    namespace = f"preview-{unique}"
    created = f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {namespace}}}\n"
    await target.apply(await target.plan([created]))
    plan = await target.plan(
        [
            created,
            f"apiVersion: v1\nkind: ConfigMap\n"
            f"metadata: {{name: missing, namespace: {namespace}}}\n",
        ]
    )
    results = await target.preview(plan.objects, delete=True)
    live = await target.current(plan.objects[0])
    assert [(r.name, r.status, r.fingerprint) for r in results] == [
        (namespace, ResourceStatus.WOULD_DELETE, fingerprint(live.body, None)),
        ("missing", ResourceStatus.NOT_FOUND, ABSENT),
    ]
    assert (await target.current(plan.objects[0])).body is not None, "nothing was deleted"


CRD = """apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: widgets.p{unique}.example.com}}
spec:
  group: p{unique}.example.com
  scope: Cluster
  names: {{plural: widgets, singular: widget, kind: Widget}}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {{openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}}}
"""


async def test_a_custom_object_of_a_crd_in_the_same_plan_would_be_created(
    target: KubeTarget, unique: str
) -> None:
    widget = f"apiVersion: p{unique}.example.com/v1\nkind: Widget\nmetadata: {{name: w}}\n"
    plan = await target.plan([CRD.format(unique=unique), widget])
    results = await target.preview(plan.objects)
    assert [(r.kind, r.status, r.fingerprint) for r in results] == [
        ("CustomResourceDefinition", ResourceStatus.WOULD_CREATE, ABSENT),
        ("Widget", ResourceStatus.WOULD_CREATE, ABSENT),
    ]
    assert results[1].message == (
        f'its kind comes with CustomResourceDefinition "widgets.p{unique}.example.com" of this plan'
    )
    assert (await target.current(plan.objects[0])).body is None, "nothing was created"
