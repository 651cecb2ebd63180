"""Looking before changing anything: objects as an apply would leave them (a server-side dry
run), objects as they are, and the RBAC objects a policy verdict depends on.

Nothing here writes: a dry run (``dryRun=All``) goes through the same merge, defaulting and
admission as the real apply, and stores nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import quote

import attrs

from transporter.kube.errors import KubeNotFound, KubeRejected
from transporter.kube.plan import PlannedObject
from transporter.kube.transport import APPLY_PATCH, Transport

FIELD_MANAGER: Final = "transporter"
RBAC: Final = "/apis/rbac.authorization.k8s.io/v1"
PAGE: Final = 500
MAX_LISTED: Final = 20_000
"""Objects one list reads at most (pages of :data:`PAGE`): a cluster with more bindings than
this is refused rather than judged on part of them."""


@attrs.frozen
class Seen:
    """One object as the cluster says it is (or would be)."""

    body: Mapping[str, Any] | None
    """The object; ``None``: there is none (nor can there be yet: its namespace or kind is
    missing, so an apply creates it as sent)."""
    refused: KubeRejected | None = None
    """The API server refused to show it (the dry run's own refusal)."""


def apply_query(*, dry_run: bool = False) -> list[tuple[str, str]]:
    """The query of a server-side apply: our field manager, forced (we own what we send)."""
    query = [("fieldManager", FIELD_MANAGER), ("force", "true")]
    return [*query, ("dryRun", "All")] if dry_run else query


async def dry_run_apply(
    transport: Transport, obj: PlannedObject, headers: Mapping[str, str] | None = None
) -> Seen:
    """The object as a forced server-side apply of ``obj`` would leave it."""
    if obj.resource is None:  # its kind comes with this plan's CRD: nothing of it exists yet
        return Seen(None)
    path = obj.resource.object_path(obj.name, obj.namespace)
    try:
        answer = await transport.request(
            "PATCH",
            path,
            query=apply_query(dry_run=True),
            body=obj.body,
            content_type=APPLY_PATCH,
            headers=headers,
        )
    except KubeNotFound:  # its namespace does not exist (yet): nothing to merge with
        return Seen(None)
    except KubeRejected as exc:
        return Seen(None, refused=exc)
    return Seen(answer if isinstance(answer, dict) else {})


async def current(
    transport: Transport, obj: PlannedObject, headers: Mapping[str, str] | None = None
) -> Seen:
    """The object as it is now; ``Seen(None)`` when there is none."""
    if obj.resource is None:
        return Seen(None)
    try:
        answer = await transport.request(
            "GET", obj.resource.object_path(obj.name, obj.namespace), headers=headers
        )
    except KubeNotFound:
        return Seen(None)
    except KubeRejected as exc:
        return Seen(None, refused=exc)
    return Seen(answer if isinstance(answer, dict) else {})


def _rbac_path(plural: str, namespace: str | None, name: str | None = None) -> str:
    scope = f"/namespaces/{quote(namespace, safe='')}" if namespace else ""
    tail = f"/{quote(name, safe='')}" if name else ""
    return f"{RBAC}{scope}/{plural}{tail}"


async def read_role(
    transport: Transport, kind: str, namespace: str | None, name: str
) -> Mapping[str, Any] | None:
    """A Role (``namespace`` given) or ClusterRole; ``None`` when there is none."""
    plural = "roles" if kind == "Role" else "clusterroles"
    try:
        return await transport.get(_rbac_path(plural, namespace if kind == "Role" else None, name))
    except KubeNotFound:
        return None


async def list_objects(
    transport: Transport, path: str, selector: str = ""
) -> list[Mapping[str, Any]]:
    """Every object of a list path (matching the label ``selector``), page by page. Raises
    :class:`KubeRejected` when there are more than :data:`MAX_LISTED`."""
    items: list[Mapping[str, Any]] = []
    token = ""
    while True:
        query = [("limit", str(PAGE))] + ([("continue", token)] if token else [])
        query += [("labelSelector", selector)] if selector else []
        answer = await transport.request("GET", path, query=query)
        page = answer.get("items") if isinstance(answer, dict) else None
        items.extend(item for item in page or () if isinstance(item, dict))
        if len(items) > MAX_LISTED:
            raise KubeRejected(f"more than {MAX_LISTED} objects at {path}", code=0)
        metadata = answer.get("metadata") if isinstance(answer, dict) else None
        token = metadata.get("continue", "") if isinstance(metadata, dict) else ""
        if not token:
            return items


async def list_bindings(transport: Transport, namespace: str | None) -> list[Mapping[str, Any]]:
    """The RoleBindings of ``namespace``, or (``None``) the ClusterRoleBindings."""
    plural = "rolebindings" if namespace else "clusterrolebindings"
    return await list_objects(transport, _rbac_path(plural, namespace))


async def aggregation_selectors(transport: Transport) -> list[tuple[str, Mapping[str, Any]]]:
    """``(name, selector)`` for every ClusterRole that aggregates others."""
    found: list[tuple[str, Mapping[str, Any]]] = []
    for role in await list_objects(transport, _rbac_path("clusterroles", None)):
        rule = role.get("aggregationRule")
        selectors = rule.get("clusterRoleSelectors") if isinstance(rule, dict) else None
        metadata = role.get("metadata")
        name = metadata.get("name") if isinstance(metadata, dict) else None
        for selector in selectors if isinstance(selectors, list) else ():
            if isinstance(selector, dict) and isinstance(name, str):
                found.append((name, selector))
    return found
