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
LABEL_KEY: Final = r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
LABEL_VALUE: Final = r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$"

_AGENT_ID = re.compile(AGENT_ID)
_EVENT_ID = re.compile(EVENT_ID)
_NAMESPACE = re.compile(NAMESPACE)
_LABEL_KEY = re.compile(LABEL_KEY)
_LABEL_VALUE = re.compile(LABEL_VALUE)

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


def check_label(text: str) -> tuple[str, str]:
    """``K=V`` with Kubernetes label syntax, so that labels select agents as kubectl -l does."""
    key, sep, value = text.partition("=")
    if not sep:
        raise ValueError(f"label {text!r} is not KEY=VALUE")
    if not _LABEL_KEY.fullmatch(key) or len(key.rpartition("/")[2]) > 63:
        raise ValueError(f"label key {key!r} is not a valid Kubernetes label key")
    if len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
        raise ValueError(f"label value {value!r} is not a valid Kubernetes label value")
    return key, value
