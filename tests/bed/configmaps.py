"""The events of the fault tests (each makes ConfigMaps of its own) and the check of what the
API server holds afterwards: every expected object, no other, each with the expected data."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config

Data = dict[str, str]


def configmap_yaml(name: str, namespace: str, data: Mapping[str, str]) -> str:
    lines = "".join(f'\n  {key}: "{value}"' for key, value in data.items())
    return (
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {namespace}\n"
        f"data:{lines}\n"
    )


def event_body(
    event_id: str, agent: str, objects: Mapping[str, Data], namespace: str
) -> dict[str, Any]:
    """``POST /events`` of an event that applies one ConfigMap per item of ``objects``. (No
    ``created_by``: the control plane sets it from the submitting token's name.)"""
    return {
        "id": event_id,
        "target_agent": agent,
        "payload": {
            "manifests": [configmap_yaml(name, namespace, data) for name, data in objects.items()]
        },
    }


@contextmanager
def core_api(kubeconfig: Path) -> Iterator[k8s.CoreV1Api]:
    api = k8s_config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    with api:
        yield k8s.CoreV1Api(api)


def create_namespace(kubeconfig: Path, name: str) -> None:
    with core_api(kubeconfig) as core:
        core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))


def configmaps(kubeconfig: Path, namespace: str) -> dict[str, Data]:
    """Every ConfigMap in ``namespace``: name -> data."""
    found: dict[str, Data] = {}
    with core_api(kubeconfig) as core:
        cursor = None
        while True:
            page = core.list_namespaced_config_map(namespace, limit=500, _continue=cursor)
            for item in page.items:
                assert item.metadata is not None and item.metadata.name is not None
                found[item.metadata.name] = dict(item.data or {})
            cursor = page.metadata._continue if page.metadata is not None else None
            if not cursor:
                return found


def wrong_objects(expected: Mapping[str, Data], found: Mapping[str, Data]) -> list[str]:
    """One line per object that is missing, extra, or holds other data than expected."""
    wrong = [f"missing: {name}" for name in sorted(expected.keys() - found.keys())]
    wrong += [f"extra: {name}" for name in sorted(found.keys() - expected.keys())]
    wrong += [
        f"wrong data: {name}: {found[name]} (expected {expected[name]})"
        for name in sorted(expected.keys() & found.keys())
        if found[name] != expected[name]
    ]
    return wrong
