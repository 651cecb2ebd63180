"""CustomResourceDefinitions: which kind a CRD in a plan defines, and waiting until it is served."""

from __future__ import annotations

from typing import Any

import attrs
import trio

from transporter.kube.errors import KubeNotReady, KubeRejected
from transporter.kube.manifests import api_group
from transporter.kube.transport import Transport

CRD_GROUP = "apiextensions.k8s.io"
CRD_KIND = "CustomResourceDefinition"
POLL_FIRST = 0.05
POLL_MAX = 1.0


def is_crd(api_version: str, kind: str) -> bool:
    return kind == CRD_KIND and api_group(api_version) == CRD_GROUP


@attrs.frozen
class CrdKind:
    """The kind a CustomResourceDefinition defines, read from its manifest."""

    name: str
    group: str
    kind: str
    namespaced: bool
    versions: tuple[str, ...]
    """Versions it serves."""


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def crd_kind(body: dict[str, Any]) -> CrdKind | None:
    """What ``body`` (a CRD manifest) defines; ``None`` if it is too malformed to say.

    A malformed CRD is the API server's to reject, with its own message; objects of its kind
    then stay unknown.
    """
    spec = body.get("spec")
    metadata = body.get("metadata")
    if not isinstance(spec, dict) or not isinstance(metadata, dict):
        return None
    names = spec.get("names")
    kind = _str(names.get("kind")) if isinstance(names, dict) else ""
    group = _str(spec.get("group"))
    listed = spec.get("versions")
    versions = tuple(
        _str(v.get("name"))
        for v in (listed if isinstance(listed, list) else [])
        if isinstance(v, dict) and v.get("served", True) is not False and _str(v.get("name"))
    )
    if not kind or not group or not versions:
        return None
    return CrdKind(
        name=_str(metadata.get("name")),
        group=group,
        kind=kind,
        namespaced=spec.get("scope", "Namespaced") != "Cluster",
        versions=versions,
    )


def _condition(crd: dict[str, Any], kind: str) -> tuple[str, str, str]:
    """``(status, reason, message)`` of one condition, empty strings when it is not there."""
    status = crd.get("status")
    conditions = status.get("conditions") if isinstance(status, dict) else None
    for condition in conditions if isinstance(conditions, list) else []:
        if isinstance(condition, dict) and condition.get("type") == kind:
            return (
                _str(condition.get("status")),
                _str(condition.get("reason")),
                _str(condition.get("message")),
            )
    return "", "", ""


async def wait_established(transport: Transport, path: str, name: str, within: float) -> None:
    """Poll the CRD at ``path`` until it is Established.

    :class:`KubeRejected` if the API server will not accept its names (the condition's own
    message), :class:`KubeNotReady` after ``within`` seconds.
    """
    delay = POLL_FIRST
    deadline = trio.current_time() + within
    while True:
        crd = await transport.get(path)
        if _condition(crd, "Established")[0] == "True":
            return
        accepted, reason, message = _condition(crd, "NamesAccepted")
        if accepted == "False":
            raise KubeRejected(
                f'CustomResourceDefinition "{name}": names not accepted: {message}',
                code=0,
                reason=reason,
            )
        if trio.current_time() + delay > deadline:
            _, _, established = _condition(crd, "Established")
            raise KubeNotReady(
                f'CustomResourceDefinition "{name}" is not Established after {within:g} s'
                + (f": {established}" if established else "")
            )
        await trio.sleep(delay)
        delay = min(delay * 2, POLL_MAX)
