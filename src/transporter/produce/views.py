"""The control plane's views of rollouts and plans, read into typed values for tables.

The API's JSON is shown as it came with ``-o json``; for a person it is read here, leniently
(a missing or mistyped field is empty, never a crash), because the view may gain fields and an
older or newer control plane may lack some. Each collection is bounded by what is shown.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, Final

import attrs

from transporter import output
from transporter.protocol import codec
from transporter.protocol.codec import ProtocolError
from transporter.protocol.model import ResourceResult, ResourceStatus
from transporter.protocol.rollout import PENDING, RolloutState

MAX_SHOWN: Final = 10_000
"""Clusters, timeline entries or objects read from one view: a rollout has at most this many."""

FINAL_CLUSTER_STATES: Final = frozenset({"completed", "failed", "expired", "cancelled", "drifted"})


def plain(value: object) -> str:
    """``value`` as one line a terminal shows as it is: line breaks as spaces, controls (an
    ANSI escape from an agent's message) escaped, as in a table's cells."""
    return output.columns([(str(value),)], headers=None).removesuffix("\n")


def text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    return "" if value is None else plain(value)


def number(data: Mapping[str, Any], key: str) -> int:
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def moment(data: Mapping[str, Any], key: str) -> float | None:
    """A time as the API gives it: a Unix time, or RFC 3339 text."""
    value = data.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) or None
    if isinstance(value, str) and value:
        try:
            return datetime.datetime.fromisoformat(value).timestamp()
        except ValueError:
            return None
    return None


def objects(data: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    items = data.get(key)
    if not isinstance(items, list):
        return []
    return [item for item in items[:MAX_SHOWN] if isinstance(item, Mapping)]


def listed(names: list[str], shown: int = 3) -> str:
    """``a,b,c`` or ``a,b,c,… (1000 agents)``: a table's cell stays short."""
    if len(names) <= shown:
        return ",".join(names)
    return ",".join(names[:shown]) + f",… ({len(names)} agents)"


@attrs.frozen
class ClusterView:
    agent_id: str
    wave: int
    event_id: str
    state: str
    phase: str
    message: str
    updated_at: float | None
    resources: tuple[ResourceResult, ...] = ()
    """A plan's: each object's result (``would_create`` …, with its diff)."""

    @property
    def final(self) -> bool:
        return self.state in FINAL_CLUSTER_STATES

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> ClusterView:
        resources = []
        for item in objects(data, "resources"):
            try:
                resources.append(codec.structure(dict(item), ResourceResult))
            except ProtocolError as exc:  # shown as such, not fatal: the rest are read
                resources.append(_unreadable(item, str(exc)))
        return cls(
            agent_id=text(data, "agent_id"),
            wave=number(data, "wave"),
            event_id=text(data, "event_id"),
            state=text(data, "state") or PENDING,
            phase=text(data, "phase"),
            message=text(data, "message"),
            updated_at=moment(data, "updated_at"),
            resources=tuple(resources),
        )


def _unreadable(item: Mapping[str, Any], why: str) -> ResourceResult:
    return ResourceResult(
        api_version=text(item, "api_version"),
        kind=text(item, "kind") or "?",
        name=text(item, "name") or "?",
        namespace=text(item, "namespace") or None,
        status=ResourceStatus.FAILED,
        message=f"the control plane's result cannot be read: {why}",
    )


@attrs.frozen
class EntryView:
    at: float | None
    what: str
    message: str
    wave: int | None

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> EntryView:
        wave = data.get("wave")
        return cls(
            moment(data, "at"),
            text(data, "what"),
            text(data, "message"),
            wave if isinstance(wave, int) and not isinstance(wave, bool) else None,
        )


@attrs.frozen
class RolloutView:
    """``GET /rollouts`` (a summary: no clusters), ``GET /rollouts/{id}`` or ``GET
    /plans/{id}`` (clusters with their objects' results)."""

    id: str
    kind: str
    state: str
    message: str
    created_at: float | None
    created_by: str
    target: str
    """The selector, or the agents named, as one line."""
    standing: bool
    wave: int
    waves: int
    counts: dict[str, int]
    total: int
    plan_id: str = ""
    expires_at: float | None = None
    clusters: tuple[ClusterView, ...] = ()
    timeline: tuple[EntryView, ...] = ()

    @property
    def settled(self) -> bool:
        """Nothing more happens without a person: ended, or standing with every cluster so
        far finished."""
        return self.state in ("completed", "failed", "cancelled", RolloutState.STANDING)

    @property
    def succeeded(self) -> bool:
        """Every cluster completed and the rollout did not end failed or cancelled."""
        if self.state in ("failed", "cancelled"):
            return False
        return all(state == "completed" for state, n in self.counts.items() if n)

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> RolloutView:
        counts = data.get("counts")
        counted = {
            str(state): n
            for state, n in (counts.items() if isinstance(counts, Mapping) else ())
            if isinstance(n, int) and not isinstance(n, bool)
        }
        clusters = tuple(ClusterView.of(item) for item in objects(data, "clusters"))
        if clusters and not counted:
            for cluster in clusters:
                counted[cluster.state] = counted.get(cluster.state, 0) + 1
        agents = data.get("agents")
        named = [plain(a) for a in agents[:MAX_SHOWN]] if isinstance(agents, list) else []
        selector = data.get("selector")
        waves = data.get("waves")
        return cls(
            id=text(data, "id") or text(data, "rollout_id"),
            kind=text(data, "kind") or "apply",
            state=text(data, "state"),
            message=text(data, "message"),
            created_at=moment(data, "created_at"),
            created_by=text(data, "created_by"),
            target=f"-l {plain(selector)}"
            if isinstance(selector, str) and selector
            else listed(named),
            standing=data.get("standing") is True,
            wave=number(data, "wave"),
            waves=len(waves) if isinstance(waves, list) else number(data, "waves"),
            counts=counted,
            total=number(data, "total") or sum(counted.values()),
            plan_id=text(data, "plan_id"),
            expires_at=moment(data, "expires_at"),
            clusters=clusters,
            timeline=tuple(EntryView.of(item) for item in objects(data, "timeline")),
        )
