"""What an object on the cluster is, as one short string: the fingerprint a plan records and
applying the plan expects to find again (``payload.expect``). Pure.

An apply's (``fingerprint(live, manifest)``) covers only what the apply would set: the live
object's values at the paths the submitted manifest sets (each of its leaves; a list the
manifest sets is one value, taken whole from the live object, as are an empty mapping and a
scalar), a path the live object lacks standing as missing, plus ``metadata.deletionTimestamp``
and that the object exists. So a field the manifest leaves to others (``spec.replicas`` an
autoscaler scales, a label someone else adds) may change between the plan and its apply
without the apply being held as drifted, while an edit of a field the manifest sets, the object
going or appearing, or its deletion starting does change it. ``status`` and what only the
server writes (:data:`SERVER_METADATA`) are never covered, even where a manifest sets them.

A delete's (``fingerprint(live, None)``) covers the whole *content*: what a person (or an
apply) may change, since a delete takes all of it away. Left out: ``status`` and what the server
or a controller writes on its own, ``metadata.resourceVersion``, ``managedFields``,
``generation``, ``creationTimestamp``, ``uid``, ``selfLink``, and the
``deployment.kubernetes.io/revision`` annotation the Deployment controller keeps.

A Secret is different either way: its values are not hashed at all (a short hash of a weak
password is a way to guess it). Its whole content is taken, values standing as ``<redacted>``,
and the Secret's ``resourceVersion`` is hashed instead. A Secret has no status, so its
resourceVersion changes only when something writes it: a change to a value (or any other write)
changes the fingerprint, and nothing about the value can be learnt from it.

The plan and its apply compute the same function with the same manifest (the event's, as
parsed and placed), so an agent of another version may see drift where there is none: plan
again.
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


def _projected(live: Any, sets: Any) -> Any:
    """``live`` at the paths ``sets`` sets: a mapping for a mapping that sets keys, else the
    live value whole as ``[value]``; a path ``live`` lacks is ``[]`` (so never equal to a value
    that is there, whatever it is)."""
    if not isinstance(sets, Mapping) or not sets or not isinstance(live, Mapping):
        return [live]
    return {k: _projected(live[k], v) if k in live else [] for k, v in sets.items()}


def covered(live: Mapping[str, Any], manifest: Mapping[str, Any]) -> dict[str, Any]:
    """What an apply's fingerprint hashes of ``live`` (see the module's docstring)."""
    sets = {k: v for k, v in manifest.items() if k != "status"}
    metadata = sets.get("metadata")
    if isinstance(metadata, Mapping):
        sets["metadata"] = {k: v for k, v in metadata.items() if k not in SERVER_METADATA}
    found = _projected(content(live), sets)
    live_metadata = live.get("metadata")
    deleting = (
        live_metadata.get("deletionTimestamp") if isinstance(live_metadata, Mapping) else None
    )
    return {"exists": True, "sets": found, "deletionTimestamp": deleting}


def fingerprint(obj: Mapping[str, Any] | None, manifest: Mapping[str, Any] | None) -> str:
    """The fingerprint of a live object as the API server returned it; ``absent`` for none.
    ``manifest``: what an apply would send (its body); ``None``: a delete's (the whole)."""
    if obj is None:
        return ABSENT
    if is_secret(obj) or manifest is None:
        hashed = redacted(content(obj))
    else:
        hashed = covered(obj, manifest)
    if is_secret(obj):
        metadata = obj.get("metadata")
        version = metadata.get("resourceVersion") if isinstance(metadata, Mapping) else None
        hashed["resourceVersion"] = version if isinstance(version, str) else ""
    text = json.dumps(hashed, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:DIGITS]
