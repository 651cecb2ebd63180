"""The fields an apply would change: a compact list of :class:`FieldChange` between the live
object and the server-side dry run's answer. Pure.

Both sides are compared as :func:`~transporter.kube.fingerprint.content` (no status, no
resourceVersion, managedFields, generation or timestamps), and a Secret's values are
``<redacted>`` on both sides (:func:`~transporter.kube.fingerprint.redacted`) *after* they were
compared: the list still says which keys change, never what they hold.

Paths read like ``spec.replicas``, ``spec.template.spec.containers[0].image`` or
``metadata.labels["app.kubernetes.io/name"]`` (a key that is not a plain word is quoted as
JSON). Values are compact JSON. Bounded: at most :data:`MAX_CHANGES` changes are listed (the
rest are counted), a path is cut at :data:`MAX_PATH` characters and a value at
:data:`MAX_VALUE`; nesting deeper than :data:`MAX_DEPTH` is compared as one value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final, Literal

import attrs

from transporter.kube.fingerprint import content, is_secret
from transporter.protocol.model import FieldChange
from transporter.protocol.report_bounds import MAX_CHANGES, MAX_PATH, MAX_VALUE, cut
from transporter.security.scrub import LAST_APPLIED, REDACTED, SECRET_FIELDS

MAX_DEPTH: Final = 32
"""Levels of nesting walked; a difference deeper down is shown as a change of the level above."""
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")
_MISSING: Final = object()


@attrs.frozen
class Diff:
    """The changes listed, and how many more there were."""

    changes: tuple[FieldChange, ...]
    more: int = 0

    @property
    def note(self) -> str:
        """`` (12 more changes not listed)`` when some were left out, else empty."""
        return f" ({self.more} more changes not listed)" if self.more else ""


def compact(value: Any) -> str:
    """``value`` as compact JSON, cut to :data:`MAX_VALUE`; ``""`` when absent."""
    if value is _MISSING:
        return ""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return cut(text, MAX_VALUE)


def _key(path: str, key: str) -> str:
    if _WORD.match(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key, ensure_ascii=False)}]"


class _Walk:
    def __init__(self, secret: bool) -> None:
        self.secret = secret
        self.changes: list[FieldChange] = []
        self.more = 0

    def shown(self, path: str, value: Any) -> Any:
        """A Secret's value as ``<redacted>`` (whatever its form: its key's presence is all)."""
        if value is _MISSING or not self.secret:
            return value
        top = path.split(".", 1)[0].split("[", 1)[0]
        if top in SECRET_FIELDS or LAST_APPLIED in path or path == "metadata.annotations":
            return REDACTED
        return value

    def add(self, path: str, old: Any, new: Any) -> None:
        if len(self.changes) >= MAX_CHANGES:
            self.more += 1
            return
        op: Literal["add", "remove", "change"] = (
            "add" if old is _MISSING else "remove" if new is _MISSING else "change"
        )
        shown_old, shown_new = self.shown(path, old), self.shown(path, new)
        self.changes.append(
            FieldChange(cut(path, MAX_PATH), op, compact(shown_old), compact(shown_new))
        )

    def walk(self, path: str, old: Any, new: Any, depth: int) -> None:
        if old == new:
            return
        if self.secret and path in SECRET_FIELDS:  # the keys, never inside a value
            old = {} if old is _MISSING else old
            new = {} if new is _MISSING else new
            depth = MAX_DEPTH - 1
        if depth < MAX_DEPTH and isinstance(old, Mapping) and isinstance(new, Mapping):
            for key in sorted({*old, *new}, key=str):
                self.walk(
                    _key(path, str(key)), old.get(key, _MISSING), new.get(key, _MISSING), depth + 1
                )
            return
        if depth < MAX_DEPTH and isinstance(old, list) and isinstance(new, list):
            for index in range(max(len(old), len(new))):
                self.walk(
                    f"{path}[{index}]",
                    old[index] if index < len(old) else _MISSING,
                    new[index] if index < len(new) else _MISSING,
                    depth + 1,
                )
            return
        self.add(path, old, new)


def diff(live: Mapping[str, Any], planned: Mapping[str, Any]) -> Diff:
    """What would change from ``live`` to ``planned`` (the dry run's answer), in path order."""
    walk = _Walk(secret=is_secret(live) or is_secret(planned))
    walk.walk("", content(live), content(planned), 0)
    return Diff(tuple(walk.changes), walk.more)
