"""Rollouts and plans as the API answers with them: a summary for listings, the whole record for
one, and a plan's per-object results.

No manifest is shown (``GET /events/{id}`` of a child shows it, redacted). Every message that
came from a cluster (its child event's, or the rollout's own) is scrubbed of the values of the
Secrets in the rollout's manifests, as an event's are (:mod:`transporter.security.redact`). A
plan's results are read from its child events and shown the same way, and a Secret's diff is
shown without its values whatever the agent sent: the agent redacts them, but an answer must
not depend on every agent doing so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from transporter.cp.api.views import shown_result
from transporter.protocol import codec
from transporter.protocol.model import EventRecord, ResourceResult
from transporter.protocol.rollout import RolloutRecord, Strategy
from transporter.security.redact import may_hold_secret, redact_manifests

Scrub = Callable[[str], str]


def _unchanged(text: str) -> str:
    return text


def scrubber(record: RolloutRecord) -> Scrub:
    """What takes the rollout's Secrets' values out of a message. Parses the manifests when
    they may hold a Secret (CPU work: callers on trio use a worker thread)."""
    manifests = record.spec.payload.manifests
    if not any(may_hold_secret(text) for text in manifests):
        return _unchanged
    _, scrub = redact_manifests(manifests)
    return scrub


def needs_scrubbing(record: RolloutRecord) -> bool:
    return any(may_hold_secret(text) for text in record.spec.payload.manifests)


def waves_of(record: RolloutRecord) -> int:
    """How many waves the rollout has: its strategy's, and a last one of the clusters that
    matched none of them (one wave when the strategy gives none)."""
    last = max((cluster.wave for cluster in record.clusters), default=-1)
    return max(len(record.spec.strategy.waves), last + 1, 1)


def summary(record: RolloutRecord, scrub: Scrub = _unchanged) -> dict[str, Any]:
    """``GET /rollouts``' item: where it stands and how many clusters are where."""
    spec = record.spec
    return {
        "id": spec.id,
        "kind": spec.kind.value,
        "state": record.state.value,
        "message": scrub(record.message),
        "created_at": spec.created_at,
        "created_by": spec.created_by,
        "selector": spec.selector,
        "agents": list(spec.agents),
        "standing": spec.standing,
        "wave": record.wave,
        "waves": waves_of(record),
        "counts": record.counts(),
        "total": len(record.clusters),
        "updated_at": record.updated_at,
    }


def strategy_view(strategy: Strategy) -> dict[str, Any]:
    """As it was submitted: ``max_parallel`` a number or ``"N%"``."""
    parallel: int | str = strategy.max_parallel
    if strategy.max_parallel_percent:
        parallel = f"{strategy.max_parallel_percent}%"
    return {
        "max_parallel": parallel,
        "max_failures": strategy.max_failures,
        "waves": [
            {"selector": wave.selector, "pause": wave.pause, "approval": wave.approval}
            for wave in strategy.waves
        ],
    }


def detail(record: RolloutRecord, scrub: Scrub = _unchanged) -> dict[str, Any]:
    """``GET /rollouts/{id}``: the summary, the strategy, every cluster and the timeline."""
    return {
        **summary(record, scrub),
        "strategy": strategy_view(record.spec.strategy),
        "clusters": [
            {
                "agent_id": cluster.agent_id,
                "wave": cluster.wave,
                "event_id": cluster.event_id,
                "state": cluster.state,
                "phase": cluster.phase,
                "message": scrub(cluster.message),
                "updated_at": cluster.updated_at,
            }
            for cluster in record.clusters
        ],
        "timeline": [
            {
                "at": entry.at,
                "what": entry.what,
                "message": scrub(entry.message),
                "wave": entry.wave,
            }
            for entry in record.timeline
        ],
        "plan_id": record.spec.plan_id,
    }


def plan_detail(
    record: RolloutRecord, children: Sequence[EventRecord | None], scrub: Scrub = _unchanged
) -> dict[str, Any]:
    """``GET /plans/{id}``: the rollout's detail, each cluster with its objects' results (none
    before its child event reported), and when the plan expires. ``children``: the child events
    of the first clusters (``results_for``), in order; the others are shown without results."""
    shown = detail(record, scrub)
    for index, cluster in enumerate(shown["clusters"]):
        child = children[index] if index < len(children) else None
        if child is not None and not _child_of(record, cluster["agent_id"], child):
            cluster["message"] = (
                f"event {cluster['event_id']!r} was not made by this plan for agent"
                f" {cluster['agent_id']!r}: its results are not shown"
            )
            child = None
        results = child.resources if child is not None else ()
        cluster["resources"] = [_result(result, scrub) for result in results]
    shown["expires_at"] = record.spec.created_at + record.spec.ttl
    shown["results_for"] = len(children)
    return shown


def _child_of(record: RolloutRecord, agent_id: str, child: EventRecord) -> bool:
    """Whether ``child`` is the plan's child event for ``agent_id``: an event of that id made
    by anyone else (one submitted before ids were reserved for children, say) must not show
    its results, which came from another agent, under this plan."""
    return child.event.rollout_id == record.spec.id and child.event.target_agent == agent_id


def _result(result: ResourceResult, scrub: Scrub) -> Any:
    return codec.unstructure(shown_result(result, scrub))
