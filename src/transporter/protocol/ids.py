"""The names things have, in one place: what the validators check and the OpenAPI document
states come from these patterns. Each ``check_*`` returns the text or raises
:class:`ValueError` with a message that names the rule."""

from __future__ import annotations

import re
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


def _shown(text: str, limit: int = 80) -> str:
    """``text`` quoted on one line, cut to ``limit`` characters (hostile input stays short)."""
    return repr(text if len(text) <= limit else text[:limit] + "...")
