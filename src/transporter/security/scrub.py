"""Keeping known Secret values out of free text: the messages of an event's status. Pure.

The API server quotes submitted values in some of its errors (server-side apply:
``.stringData.pw: expected string, got &value.valueUnstructured{Value:…}``), and a message is
stored, audited, logged and shown; so the agent scrubs every message it reports with the values
of the event's Secrets, and the control plane scrubs them again when it answers.

Values are matched as they were submitted and in the forms they are echoed in: a ``data`` value
also decoded from base64, a ``stringData`` value also encoded, non-string values as JSON writes
them, strings also JSON-escaped. A value of fewer than :data:`MIN_ANYWHERE` characters is
replaced only where it stands alone (not next to a letter or digit), so that a secret ``1`` does
not wreck every message. In a message about a Secret (``Kind=Secret``) whatever follows
``.data…: expected …, got`` is replaced as well, whatever its form.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any, Final

REDACTED: Final = "<redacted>"
"""What stands in for a Secret's value, or for a manifest that cannot be shown safely."""
SECRET_FIELDS: Final = ("data", "stringData")
LAST_APPLIED: Final = "kubectl.kubernetes.io/last-applied-configuration"
MIN_ANYWHERE: Final = 4
"""Values at least this long are replaced wherever they occur in a message."""

_ECHO = re.compile(r"(\.(?:data|stringData)\b[^\n]*?: expected [^\n]*?, got ).*")
"""Server-side apply's type errors, which print the submitted value after ``got``."""


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
                    found.update(forms_of(leaf, decode=field == "data"))
        metadata = secret.get("metadata")
        annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
        if isinstance(annotations, dict) and isinstance(annotations.get(LAST_APPLIED), str):
            found.add(annotations[LAST_APPLIED])
    found.discard("")
    return found


def forms_of(value: Any, *, decode: bool) -> set[str]:
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
