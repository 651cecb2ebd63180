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
- :class:`Scrubber`: removes known Secret values from free text, i.e. the messages of an
  event's status. The API server quotes submitted values in some of its errors (server-side
  apply: ``.stringData.pw: expected string, got &value.valueUnstructured{Value:…}``), and a
  message is stored, audited, logged and shown; so the agent scrubs every message it reports
  with the values of the event's Secrets, and the control plane scrubs them again when it
  answers.

Values are matched as they were submitted and in the forms they are echoed in: a ``data``
value also decoded from base64, a ``stringData`` value also encoded, non-string values as JSON
writes them, strings also JSON-escaped. A value of fewer than :data:`MIN_ANYWHERE` characters is
replaced only where it stands alone (not next to a letter or digit), so that a secret ``1``
does not wreck every message. In a message about a Secret (``Kind=Secret``) whatever follows
``.data…: expected …, got`` is replaced as well, whatever its form.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final

import attrs
import yaml

from transporter.protocol import yaml_reader
from transporter.protocol.model import EventRecord

REDACTED: Final = "<redacted>"
"""What stands in for a Secret's value, or for a manifest that cannot be shown safely."""
SECRET_FIELDS: Final = ("data", "stringData")
LAST_APPLIED: Final = "kubectl.kubernetes.io/last-applied-configuration"
MIN_ANYWHERE: Final = 4
"""Values at least this long are replaced wherever they occur in a message."""

_DUMPER: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_STR_TAG = "tag:yaml.org,2002:str"
_NULL_TAG = "tag:yaml.org,2002:null"
_ECHO = re.compile(r"(\.(?:data|stringData)\b[^\n]*?: expected [^\n]*?, got ).*")
"""Server-side apply's type errors, which print the submitted value after ``got``."""


def may_hold_secret(text: str) -> bool:
    """Whether a manifest may describe a Secret; ``False`` is certain, ``True`` needs a look.

    ``kind: Secret`` (or ``SecretList``) cannot be written without the word, unless a
    double-quoted YAML scalar spells it with escapes.
    """
    return "Secret" in text or "\\" in text


def _is_secret(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get("kind") == "Secret"


def _is_list(obj: Any) -> bool:
    kind = obj.get("kind") if isinstance(obj, dict) else None
    return isinstance(kind, str) and kind.endswith("List") and isinstance(obj.get("items"), list)


def _item_kind(list_kind: str, item: Any) -> Any:
    """An item's kind: its own, or the one a typed list (``SecretList``) lends it."""
    if isinstance(item, dict) and "kind" in item:
        return item["kind"]
    return list_kind.removesuffix("List") or None


def redact_object(obj: Any) -> Any:
    """``obj`` with its Secrets' values replaced (a copy where anything was); else ``obj``."""
    if _is_list(obj):
        list_kind: str = obj["kind"]
        items = [
            _redact_secret(item) if _item_kind(list_kind, item) == "Secret" else redact_object(item)
            for item in obj["items"]
        ]
        return {**obj, "items": items}
    if _is_secret(obj):
        return _redact_secret(obj)
    return obj


def _redact_secret(obj: Any) -> Any:
    if not isinstance(obj, dict):
        return obj
    out = dict(obj)
    for field in SECRET_FIELDS:
        if field not in out:
            continue
        value = out[field]
        if isinstance(value, dict):
            out[field] = dict.fromkeys(value, REDACTED)
        elif value is not None:
            out[field] = REDACTED
    metadata = out.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    if isinstance(metadata, dict) and isinstance(annotations, dict) and LAST_APPLIED in annotations:
        out["metadata"] = {**metadata, "annotations": {**annotations, LAST_APPLIED: REDACTED}}
    return out


def _secrets(obj: Any) -> Iterator[dict[Any, Any]]:
    """The Secret objects in a document (itself, or items of lists)."""
    if _is_list(obj):
        for item in obj["items"]:
            if isinstance(item, dict) and _item_kind(obj["kind"], item) == "Secret":
                yield item
            else:
                yield from _secrets(item)
    elif _is_secret(obj):
        yield obj


def _leaves(value: Any, seen: set[int]) -> Iterator[Any]:
    """Scalars inside ``value``, keys of nested mappings included; shared (aliased)
    collections are walked once."""
    if isinstance(value, dict | list):
        if id(value) in seen:
            return
        seen.add(id(value))
        if isinstance(value, dict):
            yield from value
        for part in value.values() if isinstance(value, dict) else value:
            yield from _leaves(part, seen)
    elif value is not None:
        yield value


def secret_values(obj: Any) -> set[str]:
    """The values of the Secrets in ``obj`` (a parsed document), as :class:`Scrubber` takes.

    The keys under ``data`` and ``stringData`` are not secret (they are shown); anything
    below a value is.
    """
    found: set[str] = set()
    seen: set[int] = set()
    for secret in _secrets(obj):
        for field in SECRET_FIELDS:
            value = secret.get(field)
            for part in value.values() if isinstance(value, dict) else [value]:
                for leaf in _leaves(part, seen):
                    found.update(_forms(leaf, decode=field == "data"))
        metadata = secret.get("metadata")
        annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
        if isinstance(annotations, dict) and isinstance(annotations.get(LAST_APPLIED), str):
            found.add(annotations[LAST_APPLIED])
    found.discard("")
    return found


def _forms(value: Any, *, decode: bool) -> set[str]:
    """The ways a submitted value may be written back to us."""
    if isinstance(value, bytes):  # !!binary
        value = base64.b64encode(value).decode()
    if not isinstance(value, str):
        return {str(value), json.dumps(value, default=str)}
    forms = {value, json.dumps(value, ensure_ascii=False)[1:-1], _b64(value)}
    if decode:
        try:
            plain = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, ValueError):
            pass
        else:
            forms |= {plain, json.dumps(plain, ensure_ascii=False)[1:-1]}
    return forms


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class Scrubber:
    """Replaces known Secret values in text by :data:`REDACTED`.

    Scans the text once, trying at each position the lengths values have, longest first: the
    work grows with the text's length times the number of distinct lengths, not with how many
    values there are (an event may hold thousands).
    """

    def __init__(self, values: Iterable[str] = ()) -> None:
        self.values = frozenset(v for v in values if v)
        self._by_length: dict[int, set[str]] = {}
        for value in self.values:
            self._by_length.setdefault(len(value), set()).add(value)
        self._lengths = sorted(self._by_length, reverse=True)
        self._first = frozenset(v[0] for v in self.values)

    def __bool__(self) -> bool:
        return bool(self.values)

    def __call__(self, text: str) -> str:
        if not text:
            return text
        if "Kind=Secret" in text:
            text = _ECHO.sub(lambda m: m.group(1) + REDACTED, text)
        if not self.values:
            return text
        out: list[str] = []
        i = kept = 0
        while i < len(text):
            length = self._match(text, i) if text[i] in self._first else 0
            if length:
                out += (text[kept:i], REDACTED)
                i = kept = i + length
            else:
                i += 1
        return "".join(out) + text[kept:] if out else text

    def _match(self, text: str, i: int) -> int:
        """The length of the longest value at ``text[i:]`` (0: none)."""
        for length in self._lengths:
            end = i + length
            if (
                end <= len(text)
                and text[i:end] in self._by_length[length]
                and (length >= MIN_ANYWHERE or _alone(text, i, end))
            ):
                return length
        return 0

    @classmethod
    def of_objects(cls, objects: Iterable[Any]) -> Scrubber:
        """For parsed objects (e.g. the agent's plan)."""
        values: set[str] = set()
        for obj in objects:
            values |= secret_values(obj)
        return cls(values)


def _alone(text: str, start: int, end: int) -> bool:
    """Whether no letter or digit stands right before ``start`` or at ``end``."""
    before = text[start - 1] if start > 0 else " "
    after = text[end] if end < len(text) else " "
    return not (before.isalnum() or after.isalnum())


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
                    found |= _forms(scalar, decode=key.value == "data")
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
