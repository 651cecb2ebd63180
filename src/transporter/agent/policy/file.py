"""The policy file: YAML, every key optional, unknown keys (and duplicate keys) are errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import yaml

from transporter.agent.policy.model import ALLOWANCES, PolicyError
from transporter.agent.policy.podsecurity import Level
from transporter.agent.policy.rules import Policy
from transporter.protocol import yaml_reader

KEYS: Final = ("version", "kinds", "namespaces", "clusterScoped", "podSecurity", "allow")
"""The keys of a policy file; any other is an error."""


def _patterns(
    value: Any, key: str, check: Callable[[str, str], None] | None = None
) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise PolicyError(f"{key} must be a non-empty list of patterns")
    patterns = []
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item.strip() or item != item.strip():
            raise PolicyError(f"{key}[{index}]: {item!r} is not a pattern (a non-empty string)")
        if check is not None:
            check(item, f"{key}[{index}]")
        patterns.append(item)
    return tuple(patterns)


def _check_kind_pattern(pattern: str, where: str) -> None:
    if pattern == "*":
        return
    group, sep, kind = pattern.partition("/")
    if not sep or not group or not kind or "/" in kind:
        raise PolicyError(
            f"{where}: {pattern!r} is not GROUP/KIND (write core/ConfigMap for the core group,"
            " apps/* for a whole group, * for every kind)"
        )


def parse_policy(text: str, source: str = "policy") -> Policy:
    """A policy from the text of a policy file. Raises :class:`PolicyError` (one line)."""
    try:  # the one bounded reader: duplicate keys refused (they would silently override)
        documents = list(yaml_reader.load_documents(text, yaml_reader.Budget()))
    except yaml.YAMLError as exc:
        raise PolicyError(yaml_reader.yaml_problem(exc)) from None
    documents = [doc for doc in documents if doc is not None]
    if not documents:
        raise PolicyError("is empty (write {} for the default policy)")
    if len(documents) > 1:
        raise PolicyError("holds several YAML documents; a policy is one")
    data = documents[0]
    if not isinstance(data, dict):
        raise PolicyError(f"must be a mapping with the keys {', '.join(KEYS)}")
    for key in data:
        if key not in KEYS:
            raise PolicyError(f"unknown key {key!r} (known: {', '.join(KEYS)})")
    version = data.get("version", 1)
    if type(version) is not int or version != 1:
        raise PolicyError(f"version: {version!r} is not supported (only 1)")
    cluster_scoped = data.get("clusterScoped", True)
    if not isinstance(cluster_scoped, bool):
        raise PolicyError(f"clusterScoped: {cluster_scoped!r} is not true or false")
    allow = data.get("allow", [])
    if not isinstance(allow, list):
        raise PolicyError(f"allow must be a list of: {', '.join(ALLOWANCES)}")
    for index, name in enumerate(allow):
        if not isinstance(name, str) or name not in ALLOWANCES:
            raise PolicyError(
                f"allow[{index}]: unknown allowance {name!r} (known: {', '.join(ALLOWANCES)})"
            )
    pod_security = data.get("podSecurity", Level.BASELINE.value)
    levels = ", ".join(level.value for level in Level)
    if not isinstance(pod_security, str) or pod_security not in {lv.value for lv in Level}:
        raise PolicyError(f"podSecurity: {pod_security!r} is not one of {levels}")
    return Policy(
        kinds=_patterns(data.get("kinds", ["*"]), "kinds", _check_kind_pattern),
        namespaces=_patterns(data.get("namespaces", ["*"]), "namespaces"),
        cluster_scoped=cluster_scoped,
        allow=frozenset(allow),
        pod_security=Level(pod_security),
        source=source,
    )


def load_policy(path: Path) -> Policy:
    """Read and parse a policy file. Raises :class:`PolicyError` naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"policy file {path}: cannot read it: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise PolicyError(f"policy file {path}: is not UTF-8 text") from None
    try:
        return parse_policy(text, source=f"policy file {path}")
    except PolicyError as exc:
        raise PolicyError(f"policy file {path}: {exc}") from None
