"""Submitted YAML into objects: parsing and validation only. Pure (no I/O, no cluster).

Each manifest string may hold several documents (``---``). Empty documents are skipped;
``kind: List`` and ``*List`` documents are expanded into their ``items``. Every object must be a
mapping with ``apiVersion``, ``kind`` and ``metadata.name``; anything else is a
:class:`ManifestError` that names the manifest, document (and list item) and the problem.

Untrusted input is bounded: the total size and object count here; depth, aliases, the size
once expanded and keys by :mod:`transporter.protocol.yaml_reader`, with the same bounds the
control plane checked at submission. Values come out JSON-shaped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from typing import Any

import attrs
import yaml

from transporter.kube.errors import ManifestError
from transporter.protocol.report_bounds import MAX_RESOURCES
from transporter.protocol.yaml_reader import Budget, json_key, load_documents, yaml_problem

MAX_TOTAL_CHARS = 8 * 1024 * 1024
"""All manifests of one plan together."""
MAX_OBJECTS = MAX_RESOURCES
"""Objects in one plan, after list expansion: as many results as a report may carry."""

_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_API_VERSION = re.compile(rf"^({_DNS_LABEL}(\.{_DNS_LABEL})*/)?[a-z0-9]+$")
_KIND = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")


@attrs.frozen
class ManifestObject:
    """One object as submitted (before the cluster is asked anything)."""

    api_version: str
    kind: str
    name: str
    namespace: str | None
    """As written; ``None`` when absent."""
    body: dict[str, Any] = attrs.field(repr=False, eq=False)
    """The whole object, JSON-shaped. May hold secrets: never log it."""
    where: str
    """``manifest 1, document 2`` (``, item 3`` inside a list), 1-based, for messages."""

    @property
    def group(self) -> str:
        return api_group(self.api_version)


def api_group(api_version: str) -> str:
    """``apps/v1`` → ``apps``; ``v1`` → ``""`` (the core group)."""
    return api_version.rpartition("/")[0]


def api_version_of(group: str, version: str) -> str:
    return f"{group}/{version}" if group else version


def _documents(text: str, where: str, budget: Budget) -> Iterator[tuple[int, Any]]:
    """``(1-based index, document)`` of each document in ``text``."""
    index = 1
    try:
        for document in load_documents(text, budget):
            yield index, document
            index += 1
    except yaml.YAMLError as exc:
        problem = yaml_problem(exc, where="of the manifest")
        raise ManifestError(f"{where}, document {index}", problem) from None


def _to_json(value: Any, path: str) -> Any:
    """A copy of ``value`` that JSON can carry; ValueError names what is not allowed."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = json_key(key)
            out[name] = _to_json(item, f"{path}.{name}" if path else name)
        return out
    if isinstance(value, list):
        return [_to_json(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{path}: {value} is not a number JSON can carry")
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise ValueError(f"{path}: a value of type {type(value).__name__} is not allowed")


def _path_segment_problem(value: str) -> str | None:
    """Why ``value`` cannot be a name in a URL path (as the API server's own rule), or None."""
    if value in (".", ".."):
        return f"may not be {value!r}"
    for bad in ("/", "%"):
        if bad in value:
            return f"may not contain {bad!r}"
    return None


def _string_field(data: dict[str, Any], key: str, label: str) -> str:
    value = data.get(key)
    if value is None or value == "":
        raise ValueError(f"{label} is missing")
    if not isinstance(value, str):
        raise ValueError(f"{label} must be a string, not {type(value).__name__}")
    return value


def _validate(document: Any) -> ManifestObject:
    """The object a document describes; ValueError with the problem otherwise (no ``where``)."""
    if not isinstance(document, dict):
        raise ValueError(f"expected a mapping (an object), got {_type_name(document)}")
    api_version = _string_field(document, "apiVersion", "apiVersion")
    if not _API_VERSION.fullmatch(api_version):
        raise ValueError(f"apiVersion {api_version!r} is not of the form [group/]version")
    kind = _string_field(document, "kind", "kind")
    if not _KIND.fullmatch(kind):
        raise ValueError(f"kind {kind!r} is not a valid kind")
    metadata = document.get("metadata")
    if not isinstance(metadata, dict):
        raise ValueError(
            "metadata is missing" if metadata is None else "metadata must be a mapping"
        )
    if metadata.get("name") in (None, "") and metadata.get("generateName"):
        raise ValueError("metadata.generateName is not supported: give metadata.name")
    name = _string_field(metadata, "name", "metadata.name")
    if problem := _path_segment_problem(name):
        raise ValueError(f"metadata.name {problem}")
    namespace: str | None = None
    if metadata.get("namespace") not in (None, ""):
        namespace = _string_field(metadata, "namespace", "metadata.namespace")
        if problem := _path_segment_problem(namespace):
            raise ValueError(f"metadata.namespace {problem}")
    body = _to_json(document, "")
    return ManifestObject(api_version, kind, name, namespace, body, "")


def _type_name(value: Any) -> str:
    names = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a bool"}
    return names.get(type(value), f"a {type(value).__name__}")


def _is_list(document: Any) -> bool:
    if not isinstance(document, dict):
        return False
    kind = document.get("kind")
    return (
        isinstance(kind, str) and kind.endswith("List") and isinstance(document.get("items"), list)
    )


def _expand(document: Any, where: str) -> Iterator[tuple[Any, str]]:
    """The document, or the items of a list (typed lists lend their items kind/apiVersion)."""
    if not _is_list(document):
        yield document, where
        return
    list_kind: str = document["kind"]
    item_kind = list_kind.removesuffix("List")
    api_version = document.get("apiVersion")
    for number, item in enumerate(document["items"], start=1):
        if isinstance(item, dict) and item_kind and isinstance(api_version, str):
            item = {"apiVersion": api_version, "kind": item_kind, **item}
        yield from _expand(item, f"{where}, item {number}")


def parse_manifests(manifests: Sequence[str]) -> list[ManifestObject]:
    """Every object in ``manifests``, in order; :class:`ManifestError` at the first problem."""
    total = sum(len(text) for text in manifests)
    if total > MAX_TOTAL_CHARS:
        raise ManifestError("", f"manifests of {total} characters exceed {MAX_TOTAL_CHARS}")
    objects: list[ManifestObject] = []
    budget = Budget()
    for m, text in enumerate(manifests, start=1):
        for d, document in _documents(text, f"manifest {m}", budget):
            if document is None:
                continue
            for item, where in _expand(document, f"manifest {m}, document {d}"):
                try:
                    parsed = _validate(item)
                except ValueError as exc:
                    raise ManifestError(where, str(exc)) from None
                objects.append(attrs.evolve(parsed, where=where))
                if len(objects) > MAX_OBJECTS:
                    raise ManifestError(where, f"more than {MAX_OBJECTS} objects")
    return objects
