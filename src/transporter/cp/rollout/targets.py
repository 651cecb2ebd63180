"""Who a rollout reaches, and in which wave: pure functions over the agents' records."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Final

from transporter.cp.rollout.errors import NotCovered
from transporter.protocol.model import AgentRecord
from transporter.protocol.rollout import (
    RolloutCluster,
    RolloutRecord,
    RolloutSpec,
    Strategy,
    Wave,
    child_event_id,
)
from transporter.protocol.selector import Selector

MayTarget = Callable[[str], bool]
"""Whether the caller's token reaches an agent."""
CallerScope = Sequence[str] | None
"""The caller's token's agent patterns (``()``: unscoped); ``None``: not told, and then only
the rollout's clusters are checked (:func:`check_reach`)."""

MAX_CLUSTERS: Final = 10_000
"""Clusters in one rollout at most (a selector over a larger fleet is refused, and a standing
rollout takes no more): its record is written whole at each step."""


@functools.lru_cache(maxsize=256)
def selector(text: str) -> Selector:
    """``text`` parsed (the API checked it when it accepted the rollout), kept for reuse."""
    return Selector.parse(text)


def covers(scope: Sequence[str], agent_id: str) -> bool:
    """Whether a token's agent patterns (``()``: every agent) reach ``agent_id``; the rule of
    :meth:`transporter.security.tokens.TokenRecord.may_target`."""
    return not scope or any(fnmatchcase(agent_id, pattern) for pattern in scope)


def covers_scope(caller: Sequence[str], spec_scope: Sequence[str]) -> bool:
    """Whether a caller whose token has the agent patterns ``caller`` (``()``: unscoped, every
    agent) reaches whatever a selector rollout submitted under ``spec_scope`` (its
    :attr:`~transporter.protocol.rollout.RolloutSpec.scope`) may ever reach: an unscoped caller
    always; a scoped one only when its patterns include every pattern of ``spec_scope`` (the
    same text: globs are not compared by what they match), never when ``spec_scope`` is empty
    (submitted unscoped: it may reach every agent, now or later). The clusters a rollout has
    now are checked besides (:func:`uncovered`): a rollout with none, or few, is not thereby
    anyone's."""
    if not caller:
        return True
    if not spec_scope:
        return False
    return set(spec_scope) <= set(caller)


def matched(spec: RolloutSpec, agents: Iterable[AgentRecord]) -> dict[str, Mapping[str, str]]:
    """The agents ``spec`` targets, by id (sorted), with their labels: those listed (a listed
    agent that never registered too, with no labels), or those whose labels ``spec.selector``
    selects."""
    known = {record.info.id: record.info.labels for record in agents}
    if spec.agents:
        return {agent: known.get(agent, {}) for agent in sorted(set(spec.agents))}
    chosen = selector(spec.selector)
    return {agent: labels for agent, labels in sorted(known.items()) if chosen.matches(labels)}


def wave_count(strategy: Strategy) -> int:
    """The waves' number: those given and a last one for clusters matching none of them."""
    return len(strategy.waves) + 1 if strategy.waves else 1


def wave_def(strategy: Strategy, index: int) -> Wave:
    """Wave ``index``'s pause and approval (the last, implicit wave has neither)."""
    return strategy.waves[index] if index < len(strategy.waves) else Wave()


def wave_of(strategy: Strategy, labels: Mapping[str, str]) -> int:
    """The first wave whose selector matches ``labels``; none: the implicit last wave."""
    for index, wave in enumerate(strategy.waves):
        if selector(wave.selector).matches(labels):
            return index
    return len(strategy.waves)


def clusters(spec: RolloutSpec, targets: Mapping[str, Mapping[str, str]]) -> list[RolloutCluster]:
    """A pending cluster for each target (in ``targets``' order), in its wave."""
    return [
        RolloutCluster(agent, wave_of(spec.strategy, labels), child_event_id(spec.id, agent))
        for agent, labels in targets.items()
    ]


def parallel_limit(strategy: Strategy, total: int) -> int:
    """Clusters working at once at most; 0: no limit. A percentage is of ``total``, rounded
    up, at least 1."""
    if strategy.max_parallel_percent:
        return max(1, -(-strategy.max_parallel_percent * total // 100))
    return strategy.max_parallel


def check_reach(record: RolloutRecord, may_target: MayTarget, scope: CallerScope = None) -> None:
    """Refuse (:class:`~.errors.NotCovered`) a caller that does not reach every cluster of the
    rollout, or (a selector's rollout, ``scope`` told) every agent it may still take
    (:func:`covers_scope`): a rollout with no cluster yet is not thereby anyone's."""
    spec = record.spec
    missing = uncovered({*spec.agents, *(c.agent_id for c in record.clusters)}, may_target)
    if missing:
        raise NotCovered(missing)
    if scope is not None and not spec.agents and not covers_scope(scope, spec.scope):
        reach = ", ".join(map(repr, spec.scope)) or "every agent"
        raise NotCovered(
            [],
            f"your token may not act on rollout {spec.id!r}: its selector {spec.selector!r}"
            f" may take agents beyond your token's reach (it was submitted to reach {reach})",
        )


def uncovered(agents: Iterable[str], may_target: Callable[[str], bool]) -> list[str]:
    """The agents a caller may not target, sorted."""
    return sorted(agent for agent in agents if not may_target(agent))


def wave_lists(record: RolloutRecord) -> list[list[str]]:
    """The agent ids of each wave, sorted (what ``POST /events`` answers as ``waves``)."""
    waves: list[list[str]] = [[] for _ in range(wave_count(record.spec.strategy))]
    for cluster in record.clusters:
        waves[min(cluster.wave, len(waves) - 1)].append(cluster.agent_id)
    return [sorted(wave) for wave in waves]
