"""What a subject may do on a test cluster, asked the way ``kubectl auth can-i --as`` does (a
SubjectAccessReview, answered by the API server's own RBAC authorizer), and the cluster admin's
own writes for setting a scene up. Blocking calls: run them in a worker thread."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import trio
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import utils as k8s_utils
from kubernetes.client.exceptions import ApiException

from tests.bed.kube import Cluster


@attrs.frozen
class Subject:
    """Who is asked about: a user and its groups."""

    user: str
    groups: tuple[str, ...] = ()

    @classmethod
    def service_account(cls, namespace: str, name: str) -> Subject:
        return cls(
            f"system:serviceaccount:{namespace}:{name}",
            (
                "system:serviceaccounts",
                f"system:serviceaccounts:{namespace}",
                "system:authenticated",
            ),
        )


@attrs.frozen
class Probe:
    """One ``can-i`` question: ``verb`` on ``resource`` (``/subresource``) of ``group``."""

    verb: str
    resource: str
    group: str = ""
    namespace: str | None = None
    subresource: str | None = None

    def __str__(self) -> str:
        where = f" -n {self.namespace}" if self.namespace else ""
        sub = f"/{self.subresource}" if self.subresource else ""
        group = f".{self.group}" if self.group else ""
        return f"{self.verb} {self.resource}{group}{sub}{where}"


POWERS = (
    Probe("*", "*", "*"),
    Probe("create", "clusterrolebindings", "rbac.authorization.k8s.io"),
    Probe("escalate", "clusterroles", "rbac.authorization.k8s.io"),
    Probe("bind", "clusterroles", "rbac.authorization.k8s.io"),
    Probe("impersonate", "users"),
    Probe("impersonate", "groups"),
    Probe("get", "secrets", namespace="kube-system"),
    Probe("list", "secrets", namespace="default"),
    Probe("create", "pods", namespace="kube-system"),
    Probe("create", "serviceaccounts", namespace="kube-system", subresource="token"),
    Probe("get", "nodes", subresource="proxy"),
    Probe("delete", "namespaces"),
    Probe("create", "validatingwebhookconfigurations", "admissionregistration.k8s.io"),
)
"""Questions whose answer is "yes" for anyone with cluster-admin-equivalent power."""


def _api(cluster: Cluster) -> k8s.ApiClient:
    api: k8s.ApiClient = k8s_config.new_client_from_config(config_file=str(cluster.kubeconfig))  # type: ignore[no-untyped-call]
    return api


def can_i(cluster: Cluster, subject: Subject, probe: Probe, name: str | None = None) -> bool:
    """Whether ``subject`` may do ``probe`` (on the object ``name``, for rules with
    ``resourceNames``), by a SubjectAccessReview."""
    review = k8s.V1SubjectAccessReview(
        spec=k8s.V1SubjectAccessReviewSpec(
            user=subject.user,
            groups=list(subject.groups),
            resource_attributes=k8s.V1ResourceAttributes(
                verb=probe.verb,
                resource=probe.resource,
                group=probe.group,
                namespace=probe.namespace,
                subresource=probe.subresource,
                name=name,
            ),
        )
    )
    with _api(cluster) as api:
        answer = k8s.AuthorizationV1Api(api).create_subject_access_review(review)
    return answer.status is not None and bool(answer.status.allowed)


def powers(cluster: Cluster, subject: Subject) -> dict[str, bool]:
    """Each of :data:`POWERS`: whether ``subject`` has it."""
    return {str(probe): can_i(cluster, subject, probe) for probe in POWERS}


def apply_as_admin(cluster: Cluster, *manifests: str) -> None:
    """Create the objects of ``manifests`` as the cluster admin (scenery, not under test)."""
    with _api(cluster) as api:
        for manifest in manifests:
            for document in yaml.safe_load_all(manifest):
                if document:
                    k8s_utils.create_from_dict(api, document)  # type: ignore[no-untyped-call]


def read_object(cluster: Cluster, call: Callable[[k8s.ApiClient], Any]) -> Any:
    """``call`` with an admin client; ``None`` when it answers 404."""
    with _api(cluster) as api:
        try:
            return call(api)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise


async def in_thread[T](fn: Callable[..., T], *args: Any) -> T:
    return await trio.to_thread.run_sync(fn, *args)
