"""Reading a pod's JSON the way the Go checks of :mod:`.podsecurity` see it, and Go's text.

The checks read the JSON of a pod as the API server would decode it into a ``corev1.PodSpec``.
Input we are handed may not decode at all (the API server would then refuse it anyway), so for
every field of the wrong type we choose the reading that never lets a pod through that a
well-typed pod with the same intent would fail. The rules, for each kind of field:

* An object that is null or absent is nil; one of another type counts as present but empty,
  so the checks' "is it set?" tests (``hostPath``, ``seccompProfile``, ...) err towards "set".
* A list that is null or absent is empty; a lone value stands for a one-item list, so a
  misplaced container, volume or capability is still inspected (exception:
  ``capabilities.drop`` must be a real list; a lone ``"ALL"`` does not count as dropping all).
  A null or non-object item in a list becomes an empty container/volume, as Go decodes null.
* A string that is null is ``""`` (Go's zero value); another type is shown as its JSON text, so
  it never equals an allowed value and is never taken for an empty one. Unpaired surrogates
  become U+FFFD, as Go's JSON decoder does.
* A boolean that is forbidden when true (``hostNetwork``, ``hostPID``, ``hostIPC``,
  ``privileged``, ``hostProcess``) counts as true unless it is false or null; one that must be
  false (``allowPrivilegeEscalation``) or true (``runAsNonRoot``) is wrong unless exactly that.
  Only ``hostUsers: false`` turns on the user-namespace relaxation; only
  ``os.name == "windows"`` exempts.
* An integer that is null is unset (or 0 for non-pointers), as in Go; whole-number floats are
  accepted; any other non-integer counts as a forbidden value (a ``hostPort``; a ``runAsUser``
  that might be 0).

Go's text: :func:`join_quote`, :func:`pluralize` and the phrases the checks share are the Go
helpers; :func:`go_quote` is ``%q`` (``strconv.Quote``) with Go's Unicode 15.0 tables.
Nothing here raises, whatever it is given.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, Final

Json = Mapping[str, Any]
"""A JSON object as the checks read it."""
Result = tuple[str, str] | None
"""A check's verdict: None when allowed, else Go's ``(ForbiddenReason, ForbiddenDetail)``."""
CheckFn = Callable[[Json, Json], Result]
"""A check: ``(pod metadata, pod spec) -> Result``."""

EMPTY: Final[Json] = MappingProxyType({})
"""An empty object: what a present object of the wrong type reads as."""

WINDOWS: Final = "windows"


# --- objects, lists ---


def obj(value: object) -> Json | None:
    """An object field: None if null or absent (Go's nil), else present (empty if mistyped)."""
    if value is None:
        return None
    return value if isinstance(value, Mapping) else EMPTY


def get(parent: Json, key: str) -> object:
    """The raw value of ``parent[key]``; None when absent."""
    try:
        return parent.get(key)
    except Exception:  # a hostile Mapping; the JSON we are given never gets here
        return None


def sub(parent: Json | None, key: str) -> Json | None:
    """The object field ``parent.key`` (see :func:`obj`); None when ``parent`` is nil."""
    return None if parent is None else obj(get(parent, key))


def items(value: object) -> list[object]:
    """A list field: empty if null or absent, a lone value standing for a one-item list."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def entries(value: object) -> list[Json]:
    """A list-of-objects field; a null or mistyped item is an empty object (Go's zero value)."""
    return [obj(item) or EMPTY for item in items(value)]


def containers(spec: Json) -> list[Json]:
    """The pod's containers in the order Go's visitContainers walks them."""
    found: list[Json] = []
    for key in ("initContainers", "containers", "ephemeralContainers"):
        found.extend(entries(get(spec, key)))
    return found


# --- scalars ---


def _valid_utf8(value: str) -> str:
    """``value`` with unpaired surrogates as U+FFFD (pairs joined), as Go's decoder reads it."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return value


def _int_text(value: int) -> str:
    try:
        return str(value)
    except ValueError:  # beyond Python's digit limit for str(int)
        return hex(value)


def _json_text(value: object) -> str:
    """Compact JSON text, as Go's json.Marshal writes it (near enough for wrong-typed input)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return _int_text(value)
    try:
        dumped = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=repr)
    except Exception:  # circular, over-deep or unprintable
        dumped = repr(type(value))
    return _valid_utf8(dumped)


def text(value: object) -> str:
    """A string field: ``""`` if null or absent, else the string (or another type's JSON)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return _valid_utf8(str.__str__(value))
    return _json_text(value)


def number(value: object) -> int | None:
    """An integer field's value; None if null, absent or not an integer (whole floats count)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


def number_text(value: object) -> str:
    """How a non-zero integer field reads in Go's text (a mistyped one: as :func:`text`)."""
    found = number(value)
    return text(value) if found is None else _int_text(found)


def true_ish(value: object) -> bool:
    """A boolean forbidden when true: set unless false, null or absent."""
    return value is not None and value is not False


def name(container: Json) -> str:
    """A container's (or volume's) name."""
    return text(get(container, "name"))


def windows(spec: Json) -> bool:
    """Whether the pod says it runs Windows (Go: ``OS != nil && OS.Name == "windows"``)."""
    os = sub(spec, "os")
    return os is not None and text(get(os, "name")) == WINDOWS


def user_namespaced(spec: Json) -> bool:
    """Go's relaxPolicyForUserNamespacePod: only ``hostUsers: false``."""
    return get(spec, "hostUsers") is False


# --- Go's text ---


def pluralize(singular: str, plural: str, count: int) -> str:
    return singular if count == 1 else plural


def join_quote(values: Iterable[str]) -> str:
    """Go's joinQuote: each value in double quotes, unescaped, joined by ", "."""
    found = list(values)
    return '"' + '", "'.join(found) + '"' if found else ""


def containers_phrase(names: list[str]) -> str:
    """``container "a"`` or ``containers "a", "b"``."""
    return f"{pluralize('container', 'containers', len(names))} {join_quote(names)}"


def uses_detail(who: str, count: int, what: str, whats: str, values: list[str]) -> str:
    """``containers "a", "b" use hostPorts "80", "443"``: ``who`` names ``count`` users."""
    return f"{who} {pluralize('uses', 'use', count)} {pluralize(what, whats, len(values))} " + (
        join_quote(values)
    )


def setters_detail(pod: bool, names: list[str], predicate: str) -> str | None:
    """``pod and containers "a", "b" <predicate>``; None if neither the pod nor any container."""
    setters = ["pod"] if pod else []
    if names:
        setters.append(containers_phrase(names))
    return f"{' and '.join(setters)} {predicate}" if setters else None


_GO_ESCAPES: Final = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    '"': '\\"',
    "\\": "\\\\",
}
_UNICODE_15_1: Final = ((0x2FFC, 0x2FFF), (0x31EF, 0x31EF), (0x2EBF0, 0x2EE5D))
"""Printable to Python 3.13 (Unicode 15.1) but not yet assigned in Go's Unicode 15.0."""


def _go_printable(char: str) -> bool:
    """Go's strconv.IsPrint: letters, marks, numbers, punctuation, symbols and ASCII space."""
    if not char.isprintable():
        return False
    code = ord(char)
    return not any(low <= code <= high for low, high in _UNICODE_15_1)


def _go_escape(char: str) -> str:
    code = ord(char)
    if code < 0x20 or code == 0x7F:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def go_quote(value: str) -> str:
    """Go's ``%q`` of a string: strconv.Quote."""
    out = ['"']
    for char in _valid_utf8(value):
        escaped = _GO_ESCAPES.get(char)
        if escaped is not None:
            out.append(escaped)
        elif _go_printable(char):
            out.append(char)
        else:
            out.append(_go_escape(char))
    out.append('"')
    return "".join(out)
