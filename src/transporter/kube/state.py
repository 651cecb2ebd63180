"""The agent's own state in its cluster: ConfigMaps in a namespace of its own, written as the
agent (never as an event's producer)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import quote

from transporter.kube.errors import KubeRejected
from transporter.kube.inspect import apply_query, list_objects
from transporter.kube.transport import APPLY_PATCH, Transport

MERGE_PATCH: Final = "application/merge-patch+json"


def _config_maps(namespace: str, name: str | None = None) -> str:
    tail = f"/{quote(name, safe='')}" if name else ""
    return f"/api/v1/namespaces/{quote(namespace, safe='')}/configmaps{tail}"


async def ensure_namespace(transport: Transport, namespace: str) -> None:
    """The namespace, made (server-side apply) when it is not there."""
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    await transport.request(
        "PATCH",
        f"/api/v1/namespaces/{quote(namespace, safe='')}",
        query=apply_query(),
        body=body,
        content_type=APPLY_PATCH,
    )


async def list_config_maps(
    transport: Transport, namespace: str, selector: str
) -> list[Mapping[str, Any]]:
    """The ConfigMaps of ``namespace`` that match the label ``selector``."""
    return await list_objects(transport, _config_maps(namespace), selector)


async def add_to_config_map(
    transport: Transport,
    namespace: str,
    name: str,
    data: Mapping[str, str],
    labels: Mapping[str, str],
) -> None:
    """Add ``data``'s keys to ConfigMap ``name`` (a merge patch: other keys stay; writers of
    other keys never conflict), making it with ``labels`` when it is not there."""
    path = _config_maps(namespace, name)
    try:
        await transport.request("PATCH", path, body={"data": dict(data)}, content_type=MERGE_PATCH)
        return
    except KubeRejected as exc:
        if exc.code != 404:
            raise
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "data": dict(data),
    }
    try:
        await transport.request("POST", _config_maps(namespace), body=body)
    except KubeRejected as exc:
        if exc.code != 409:  # made meanwhile by another writer: add to it
            raise
        await transport.request("PATCH", path, body={"data": dict(data)}, content_type=MERGE_PATCH)


async def delete_config_map(transport: Transport, namespace: str, name: str) -> None:
    try:
        await transport.request("DELETE", _config_maps(namespace, name))
    except KubeRejected as exc:
        if exc.code != 404:
            raise
