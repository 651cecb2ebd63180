"""What an object on the cluster is, as one short string: the fingerprint a plan records and
applying the plan expects to find again (``payload.expect``). Pure.

It is the SHA-256 of the object's *content*: what a person (or an apply) may change. Left out:
``status`` and what the server or a controller writes on its own, ``metadata.resourceVersion``,
``managedFields``, ``generation``, ``creationTimestamp``, ``uid``, ``selfLink``, and the
``deployment.kubernetes.io/revision`` annotation the Deployment controller keeps. So a
controller updating a Deployment's status during a rollout leaves the fingerprint as it was,
while an edit of its spec, data, labels or annotations changes it.

A Secret is different: its values are not hashed at all (a short hash of a weak password is a
way to guess it). They stand as ``<redacted>``, and the Secret's ``resourceVersion`` is hashed
instead. A Secret has no status, so its resourceVersion changes only when something writes it:
a change to a value (or any other write) changes the fingerprint, and nothing about the value
can be learnt from it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Final

from transporter.protocol.model import ABSENT
from transporter.security.scrub import LAST_APPLIED, REDACTED, SECRET_FIELDS

DIGITS: Final = 32
"""Hex digits kept of the SHA-256 (128 bits): enough that no edit collides by chance."""
SERVER_METADATA: Final = frozenset(
    {"resourceVersion", "managedFields", "generation", "creationTimestamp", "uid", "selfLink"}
)
"""Metadata the API server writes and no apply can set."""
CHANGED: Final = "changed on the cluster since the plan (plan again)"
"""Why an object a plan's apply expects is not touched: its fingerprint is another now."""
NOT_PLANNED: Final = "not in the plan (plan again)"
"""Why an object a plan's apply does not list is not touched."""
CONTROLLER_ANNOTATIONS: Final = frozenset({"deployment.kubernetes.io/revision"})
"""Annotations a controller keeps up to date on the objects it manages."""


def is_secret(obj: Mapping[str, Any]) -> bool:
    return obj.get("kind") == "Secret" and obj.get("apiVersion") == "v1"


def content(obj: Mapping[str, Any]) -> dict[str, Any]:
    """``obj`` without its status and without what the server and controllers write on their
    own (see the module's docstring): what an apply or an edit can change."""
    kept = {k: v for k, v in obj.items() if k != "status"}
    metadata = obj.get("metadata")
    if isinstance(metadata, Mapping):
        meta = {k: v for k, v in metadata.items() if k not in SERVER_METADATA}
        annotations = meta.get("annotations")
        if isinstance(annotations, Mapping):
            kept_annotations = {
                k: v for k, v in annotations.items() if k not in CONTROLLER_ANNOTATIONS
            }
            if kept_annotations:
                meta["annotations"] = kept_annotations
            else:
                del meta["annotations"]
        kept["metadata"] = meta
    return kept


def redacted(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A Secret's content with every value of ``data`` and ``stringData`` (and a
    last-applied-configuration annotation, which quotes them) replaced by ``<redacted>``; the
    keys stay. Any other object as it is."""
    found = dict(obj)
    if not is_secret(obj):
        return found
    for field in SECRET_FIELDS:
        values = obj.get(field)
        if isinstance(values, Mapping):
            found[field] = dict.fromkeys(values, REDACTED)
        elif values is not None:
            found[field] = REDACTED
    metadata = obj.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    annotations = metadata.get("annotations")
    if isinstance(annotations, Mapping) and LAST_APPLIED in annotations:
        shown = {**annotations, LAST_APPLIED: REDACTED}
        found["metadata"] = {**metadata, "annotations": shown}
    return found


def fingerprint(obj: Mapping[str, Any] | None) -> str:
    """The fingerprint of a live object as the API server returned it; ``absent`` for none."""
    if obj is None:
        return ABSENT
    hashed = redacted(content(obj))
    if is_secret(obj):
        metadata = obj.get("metadata")
        version = metadata.get("resourceVersion") if isinstance(metadata, Mapping) else None
        hashed["resourceVersion"] = version if isinstance(version, str) else ""
    text = json.dumps(hashed, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:DIGITS]
