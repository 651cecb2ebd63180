"""The names things have, in one place: what the validators check and the OpenAPI document
states come from these patterns. Each ``check_*`` returns the text or raises
:class:`ValueError` with a message that names the rule."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Final

AGENT_ID: Final = r"^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$"
"""An agent's id: a DNS label of at most 63 characters (dots allowed), usable as a label value
and in a certificate's URI."""
EVENT_ID: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
"""An event's id: also a ConfigMap key in the agent's journal."""
NAMESPACE: Final = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
"""A Kubernetes namespace name (a DNS label)."""
_DNS_SUBDOMAIN_RE: Final = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_LABEL_NAME_RE: Final = r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
LABEL_KEY: Final = rf"^({_DNS_SUBDOMAIN_RE}/)?{_LABEL_NAME_RE}$"
"""A label key as Kubernetes takes it (apimachinery's ``IsQualifiedName``): an optional DNS
subdomain prefix of at most 253 characters and ``/``, then a name of at most 63 characters."""
LABEL_VALUE: Final = rf"^({_LABEL_NAME_RE})?$"
"""A label value (``IsValidLabelValue``): at most 63 characters, and may be empty."""
LABEL_NAME_MAX: Final = 63
LABEL_PREFIX_MAX: Final = 253

_AGENT_ID = re.compile(AGENT_ID)
_EVENT_ID = re.compile(EVENT_ID)
_NAMESPACE = re.compile(NAMESPACE)
_LABEL_VALUE = re.compile(LABEL_VALUE)
_DNS_SUBDOMAIN = re.compile(_DNS_SUBDOMAIN_RE)
_LABEL_NAME = re.compile(_LABEL_NAME_RE)

AGENT_ID_RULE: Final = (
    "1-63 lower-case letters, digits, '-' or '.', starting and ending with a letter or digit"
)
EVENT_ID_RULE: Final = "1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"


def is_agent_id(text: str) -> bool:
    return bool(_AGENT_ID.fullmatch(text))


def check_agent_id(text: str) -> str:
    if not is_agent_id(text):
        raise ValueError(f"agent id {text!r} must be {AGENT_ID_RULE}")
    return text


def is_event_id(text: str) -> bool:
    return bool(_EVENT_ID.fullmatch(text))


def check_namespace(text: str) -> str:
    if not _NAMESPACE.fullmatch(text):
        raise ValueError(
            f"namespace {text!r} must be 1-63 lower-case letters, digits or '-', starting and"
            " ending with a letter or digit"
        )
    return text


def check_label_key(key: str) -> str:
    """A label key as Kubernetes validates it (``IsQualifiedName``), or a ValueError saying
    which part is wrong. Lengths are checked before any pattern, so long text costs little."""
    prefix, slash, name = key.rpartition("/")
    if "/" in prefix:
        raise ValueError(f"label key {_shown(key)} has more than one '/'")
    if slash and not (0 < len(prefix) <= LABEL_PREFIX_MAX and _DNS_SUBDOMAIN.fullmatch(prefix)):
        raise ValueError(
            f"label key {_shown(key)}: its prefix must be a DNS subdomain of 1-"
            f"{LABEL_PREFIX_MAX} characters (lower-case letters, digits, '-' and '.')"
        )
    if not (0 < len(name) <= LABEL_NAME_MAX and _LABEL_NAME.fullmatch(name)):
        raise ValueError(
            f"label key {_shown(key)}: its name must be 1-{LABEL_NAME_MAX} letters, digits,"
            " '-', '_' or '.', starting and ending with a letter or digit"
        )
    return key


def check_label_value(value: str) -> str:
    """A label value as Kubernetes validates it (``IsValidLabelValue``; empty is valid)."""
    if len(value) > LABEL_NAME_MAX or not _LABEL_VALUE.fullmatch(value):
        raise ValueError(
            f"label value {_shown(value)} must be at most {LABEL_NAME_MAX} letters, digits,"
            " '-', '_' or '.', starting and ending with a letter or digit (or be empty)"
        )
    return value


def check_label(text: str) -> tuple[str, str]:
    """``K=V`` with Kubernetes label syntax, so that labels select agents as kubectl -l does
    (:mod:`transporter.protocol.selector`)."""
    key, sep, value = text.partition("=")
    if not sep:
        raise ValueError(f"label {_shown(text)} is not KEY=VALUE")
    return check_label_key(key), check_label_value(value)


MAX_LABELS: Final = 64
"""Labels an agent may carry (what selectors choose agents by)."""
MAX_DESCRIPTION: Final = 253
"""Characters of each of an agent's own words about itself (cluster name, version, ...)."""
MAX_CAPABILITIES: Final = 32
_CAPABILITY = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def check_agent_description(
    labels: Mapping[str, str], words: Mapping[str, str], capabilities: Sequence[str]
) -> None:
    """What an agent says about itself when it registers, which every producer will see and
    selectors will choose by: labels as Kubernetes takes them (at most :data:`MAX_LABELS`),
    each of ``words`` (field name to text) printable on one line and at most
    :data:`MAX_DESCRIPTION` characters, capabilities short lower-case words. A ValueError
    names the first field that is not."""
    if len(labels) > MAX_LABELS:
        raise ValueError(f"{len(labels)} labels, more than {MAX_LABELS}")
    for key, value in labels.items():
        check_label_key(key)
        check_label_value(value)
    for field, text in words.items():
        if len(text) > MAX_DESCRIPTION:
            raise ValueError(f"{field} is longer than {MAX_DESCRIPTION} characters")
        if _UNPRINTABLE.search(text):
            raise ValueError(f"{field} {_shown(text)} holds a control character")
    if len(capabilities) > MAX_CAPABILITIES:
        raise ValueError(f"{len(capabilities)} capabilities, more than {MAX_CAPABILITIES}")
    for capability in capabilities:
        if not _CAPABILITY.fullmatch(capability):
            raise ValueError(f"capability {_shown(capability)} is not a short lower-case word")


def _shown(text: str, limit: int = 80) -> str:
    """``text`` quoted on one line, cut to ``limit`` characters (hostile input stays short)."""
    return repr(text if len(text) <= limit else text[:limit] + "...")
