"""What the cluster says, as plain data for the policy: objects as they will be after the
merge, and the roles and bindings a verdict depends on. The agent reads it
(:mod:`transporter.agent.inspection`); the policy only looks at it, so it stays pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

RoleKey = tuple[str, str | None, str]
"""``(kind, namespace, name)`` of a Role (namespaced) or ClusterRole (namespace ``None``)."""
CLUSTER_BINDINGS = None
"""The key of :attr:`ClusterView.bindings` for ClusterRoleBindings."""


@attrs.frozen
class Needs:
    """What the policy would look at next: each part is asked of the cluster once."""

    merge: frozenset[int] = frozenset()
    """Objects (by their place in the event) to judge as they will be: for an apply, the
    server-side dry run's answer; for a delete, the object as it is."""
    roles: frozenset[RoleKey] = frozenset()
    """Roles that bindings refer to and the event does not hold."""
    bindings: frozenset[str | None] = frozenset()
    """Namespaces whose RoleBindings to read; ``None``: the ClusterRoleBindings."""
    aggregators: bool = False
    """Whether to read which ClusterRoles aggregate others (and by which labels)."""

    def __bool__(self) -> bool:
        return bool(self.merge or self.roles or self.bindings or self.aggregators)


@attrs.define
class ClusterView:
    """What has been read so far."""

    merged: dict[int, Mapping[str, Any] | None] = attrs.field(factory=dict)
    """Object index → its body after the merge (apply) or as it is (delete); ``None``: it does
    not exist, or cannot yet (its namespace or kind is not there), so it is judged as sent."""
    refused: dict[int, str] = attrs.field(factory=dict)
    """Object index → the API server's refusal of its dry run: it will not be applied."""
    roles: dict[RoleKey, Mapping[str, Any] | None] = attrs.field(factory=dict)
    bindings: dict[str | None, list[Mapping[str, Any]]] = attrs.field(factory=dict)
    aggregators: list[tuple[str, Mapping[str, Any]]] | None = None
    """``(name, selector)`` of each ClusterRole's ``aggregationRule`` selector; ``None``: not
    read."""

    def missing(self, needs: Needs) -> Needs:
        """The part of ``needs`` not read yet."""
        return Needs(
            merge=frozenset(i for i in needs.merge if i not in self.merged | self.refused.keys()),
            roles=frozenset(key for key in needs.roles if key not in self.roles),
            bindings=frozenset(ns for ns in needs.bindings if ns not in self.bindings),
            aggregators=needs.aggregators and self.aggregators is None,
        )
