"""Keeping the values of Secrets out of everything people and logs see. Pure: no I/O.

The store keeps an event's manifests as submitted (its agent needs them), but what is *shown*
goes through here:

- :func:`redact_manifests`: the manifests as the API answers with them. Under ``data`` and
  ``stringData`` of every ``kind: Secret`` object (also inside ``List`` and ``SecretList``
  documents) each value is replaced by :data:`REDACTED`, the keys kept; a non-mapping there is
  replaced whole, and so is the ``kubectl.kubernetes.io/last-applied-configuration`` annotation
  of a Secret (a copy of the Secret, values included). A manifest that holds such an object is
  written out again from what was parsed, so its comments go too; every other manifest is
  returned exactly as it was. A manifest that may hold a Secret but cannot be read is replaced
  whole by :data:`REDACTED`.
- :func:`redact_record`: an event's record as it may be shown: its manifests redacted as
  above, its messages scrubbed (below) with the values of its Secrets.
- :mod:`.scrub`: known Secret values out of free text (the messages).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import attrs
import yaml

from transporter.protocol import yaml_reader
from transporter.protocol.model import EventRecord
from transporter.security.scrub import (
    LAST_APPLIED,
    REDACTED,
    SECRET_FIELDS,
    Scrubber,
    forms_of,
)

_DUMPER: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_STR_TAG = "tag:yaml.org,2002:str"
_NULL_TAG = "tag:yaml.org,2002:null"


def may_hold_secret(text: str) -> bool:
    """Whether a manifest may describe a Secret; ``False`` is certain, ``True`` needs a look.

    ``kind: Secret`` (or ``SecretList``) cannot be written without the word, unless a
    double-quoted YAML scalar spells it with escapes.
    """
    return "Secret" in text or "\\" in text


def _field(node: yaml.Node, name: str) -> yaml.Node | None:
    """The value of key ``name`` in a mapping node (the last, if it is there twice)."""
    found = None
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == name:
                found = value
    return found


def _kinds(node: yaml.Node) -> set[str]:
    """Every ``kind`` a mapping node gives itself (two, if the key is there twice)."""
    if not isinstance(node, yaml.MappingNode):
        return set()
    return {
        value.value
        for key, value in node.value
        if isinstance(key, yaml.ScalarNode)
        and key.value == "kind"
        and isinstance(value, yaml.ScalarNode)
    }


def _secret_nodes(node: yaml.Node) -> Iterator[yaml.MappingNode]:
    """Like :func:`_secrets`, on nodes: anything that may be taken for a Secret."""
    kinds = _kinds(node)
    items = _field(node, "items")
    lists = {kind for kind in kinds if kind.endswith("List")}
    if lists and isinstance(items, yaml.SequenceNode):
        for item in items.value:
            own = _kinds(item)
            if isinstance(item, yaml.MappingNode) and (
                "Secret" in own or (not own and "SecretList" in lists)
            ):
                yield item
            else:
                yield from _secret_nodes(item)
    if "Secret" in kinds and isinstance(node, yaml.MappingNode):
        yield node


def _scalars(node: yaml.Node, seen: set[int]) -> Iterator[str]:
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.ScalarNode):
        yield str(node.value)
    elif isinstance(node, yaml.SequenceNode):
        for part in node.value:
            yield from _scalars(part, seen)
    elif isinstance(node, yaml.MappingNode):
        for pair in node.value:
            for part in pair:
                yield from _scalars(part, seen)


def _written_values(secret: yaml.MappingNode, seen: set[int]) -> set[str]:
    """A Secret's values as written, read from its nodes (also where constructing fails:
    ``!!int abc``, and the manifest is not shown)."""
    found: set[str] = set()
    for key, value in secret.value:
        if not isinstance(key, yaml.ScalarNode):
            continue
        if key.value in SECRET_FIELDS:
            parts = [v for _, v in value.value] if isinstance(value, yaml.MappingNode) else [value]
            for part in parts:
                for scalar in _scalars(part, seen):
                    found |= forms_of(scalar, decode=key.value == "data")
        elif key.value == "metadata":
            annotations = _field(value, "annotations")
            annotation = _field(annotations, LAST_APPLIED) if annotations else None
            if isinstance(annotation, yaml.ScalarNode):
                found.add(str(annotation.value))
    return found


def _blank(node: yaml.Node, seen: set[int]) -> None:
    """Every scalar in ``node`` becomes :data:`REDACTED`, in place: the node may be shared
    through aliases, and every place that shows it must show the blank."""
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.ScalarNode):
        node.value, node.tag, node.style = REDACTED, _STR_TAG, None
    elif isinstance(node, yaml.SequenceNode):
        for part in node.value:
            _blank(part, seen)
    elif isinstance(node, yaml.MappingNode):
        for pair in node.value:
            for part in pair:
                _blank(part, seen)


def _blanked(node: yaml.Node, seen: set[int]) -> yaml.Node:
    """``node`` blanked; a collection is shown as one :data:`REDACTED`."""
    _blank(node, seen)
    if isinstance(node, yaml.ScalarNode):
        return node
    return yaml.ScalarNode(_STR_TAG, REDACTED)


def _redact_secret_node(secret: yaml.MappingNode) -> None:
    """The values under ``data`` and ``stringData`` (keys kept) and the last-applied copy of
    the Secret become :data:`REDACTED`."""
    seen: set[int] = set()
    for index, (key, value) in enumerate(secret.value):
        if not isinstance(key, yaml.ScalarNode):
            continue
        if key.value in SECRET_FIELDS:
            if isinstance(value, yaml.MappingNode):
                value.value = [(k, _blanked(v, seen)) for k, v in value.value]
            elif not (isinstance(value, yaml.ScalarNode) and value.tag == _NULL_TAG):
                secret.value[index] = (key, _blanked(value, seen))
        elif key.value == "metadata":
            annotations = _field(value, "annotations")
            if isinstance(annotations, yaml.MappingNode):
                annotations.value = [
                    (k, _blanked(v, seen) if _is_key(k, LAST_APPLIED) else v)
                    for k, v in annotations.value
                ]


def _is_key(node: yaml.Node, name: str) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.value == name


def redact_manifest(text: str, budget: yaml_reader.Budget | None = None) -> tuple[str, set[str]]:
    """The manifest as it may be shown, and the Secret values it holds (see module doc).

    Read as nodes with the bounds of :mod:`.yaml_reader` (``budget``: shared by an event's
    manifests) and written out again from them, aliases kept: nothing is expanded, so what is
    shown is no larger than what was sent.
    """
    if not may_hold_secret(text):
        return text, set()
    budget = budget or yaml_reader.Budget()
    try:
        documents = yaml_reader.compose_documents(text, budget)
    except (yaml.YAMLError, RecursionError):
        return REDACTED, set()
    secrets = [secret for doc in documents if doc is not None for secret in _secret_nodes(doc)]
    if not secrets:
        return text, set()
    seen: set[int] = set()
    values = set().union(*(_written_values(secret, seen) for secret in secrets))
    values.discard("")
    try:  # what cannot be built (duplicate keys, a value its tag cannot read) is not shown
        for _ in yaml_reader.load_documents(text, yaml_reader.Budget()):
            pass
        for secret in secrets:
            _redact_secret_node(secret)
        shown = yaml.serialize_all(
            [doc for doc in documents if doc is not None],
            Dumper=_DUMPER,
            allow_unicode=True,
            explicit_start=len(documents) > 1,
        )
    except (yaml.YAMLError, RecursionError, ValueError, TypeError):
        return REDACTED, values
    return str(shown), values


def redact_manifests(manifests: Sequence[str]) -> tuple[tuple[str, ...], Scrubber]:
    """Each manifest as it may be shown, and a :class:`Scrubber` for the values of all."""
    shown: list[str] = []
    values: set[str] = set()
    budget = yaml_reader.Budget()
    for text in manifests:
        one, found = redact_manifest(text, budget)
        shown.append(one)
        values |= found
    return tuple(shown), Scrubber(values)


def needs_redaction(record: EventRecord) -> bool:
    """Whether :func:`redact_record` may change ``record`` (a quick look, no parsing)."""
    return any(may_hold_secret(text) for text in record.event.payload.manifests)


def redact_record(record: EventRecord) -> EventRecord:
    """``record`` as it may be shown: manifests redacted, messages scrubbed. Parses YAML, so
    it may take a while for big manifests (callers on trio use a worker thread)."""
    if not needs_redaction(record):
        return record
    manifests, scrub = redact_manifests(record.event.payload.manifests)
    event = record.event
    return attrs.evolve(
        record,
        event=attrs.evolve(event, payload=attrs.evolve(event.payload, manifests=manifests)),
        message=scrub(record.message),
        resources=tuple(attrs.evolve(r, message=scrub(r.message)) for r in record.resources),
        timeline=tuple(attrs.evolve(t, message=scrub(t.message)) for t in record.timeline),
    )
