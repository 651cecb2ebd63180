"""Turning a producer's JSON into a rollout or a plan (:mod:`.rollout`), or saying what is wrong.

A ``POST /events`` body with ``target_agents`` (a list) or ``selector`` (a label selector over
agents' labels) instead of ``target_agent`` is a rollout; ``POST /plans`` takes the same targets
and payload and makes a plan. Everything a single event has (payload, ``ttl``, ``priority``,
``labels``, ``created_by``) is checked by the same rules (:mod:`.submission`), and every child
event the rollout will make must fit the agent channel as a single event must.

Pure, like :mod:`.submission`: the caller supplies the time and a fresh id; every refusal is an
:class:`InvalidEvent` naming its field (dotted path).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs

from transporter.protocol import ids
from transporter.protocol.model import Action, Event
from transporter.protocol.rollout import (
    ROLLOUT_ID_RULE,
    RolloutKind,
    RolloutSpec,
    Strategy,
    Wave,
    child_event_id,
    is_rollout_id,
)
from transporter.protocol.selector import Selector, SelectorError
from transporter.protocol.submission import (
    DEFAULT_TTL,
    MAX_PRIORITY,
    MAX_READY_TIMEOUT,
    MAX_TTL,
    MIN_PRIORITY,
    EventTooLarge,
    InvalidEvent,
    check_size,
    check_type,
    created_by_of,
    labels_of,
    parse_payload,
    require,
    sent_size,
    whole_number,
)

MAX_TARGETS: Final = 1000
"""Agents named in one ``target_agents``."""
MAX_WAVES: Final = 16
MAX_PARALLEL: Final = 100_000
MAX_FAILURES: Final = 100_000
MAX_PAUSE: Final = 86_400
"""Seconds a wave may wait after the one before it."""
DEFAULT_PLAN_TTL: Final = 3600
"""A plan's lifetime: its dry runs must finish within it, and it can be applied until then."""
MAX_ROLLOUT_BYTES: Final = 256 * 1024 * 1024
"""A rollout's child events together (clusters x the largest child's size as sent): each child
is stored, and a rollout's are made in one go, so this bounds what one request can make the
store hold."""
LONGEST_AGENT_ID: Final = "a" * 63
"""The longest agent id there can be (:data:`ids.AGENT_ID`): a selector's child events are
checked for size with it, before anyone knows which agents will match."""

_COMMON: Final = frozenset(
    {"id", "type", "target_agents", "selector", "payload", "ttl", "priority", "labels"}
)
ROLLOUT_FIELDS: Final = _COMMON | {"created_by", "strategy", "standing", "allow_empty"}
PLAN_FIELDS: Final = _COMMON | {"created_by"}
_STRATEGY_FIELDS: Final = frozenset({"max_parallel", "max_failures", "waves"})
_WAVE_FIELDS: Final = frozenset({"selector", "pause", "approval"})
_APPLY_FIELDS: Final = frozenset({"id", "strategy", "wait_ready", "ready_timeout", "ttl"})
ROLLOUT_ID: Final = r"^[A-Za-z0-9][A-Za-z0-9.-]{0,63}$"
"""A rollout's id as a pattern (for the API's document): :data:`.rollout.ROLLOUT_ID_RULE`."""
PERCENT: Final = r"^(100|[1-9][0-9]?)%$"
"""``max_parallel`` as a percentage, 1% to 100% (no leading zero, no space)."""
_PERCENT = re.compile(PERCENT.strip("^$"))
_TARGETS_RULE: Final = "exactly one of target_agent, target_agents or selector"


def is_rollout_body(body: Any) -> bool:
    """Whether a ``POST /events`` body asks for a rollout (rather than one event): it names
    ``target_agents`` or ``selector``. Then :func:`parse_rollout` checks it, else
    :func:`.submission.parse_submission`."""
    return isinstance(body, Mapping) and ("target_agents" in body or "selector" in body)


def parse_rollout(
    body: Any,
    *,
    now: float,
    new_id: Callable[[], str],
    created_by: str | None = None,
    scope: tuple[str, ...] = (),
) -> RolloutSpec:
    """A ``POST /events`` body with ``target_agents`` or ``selector``, as a rollout's spec.

    ``created_by`` as for :func:`.submission.parse_submission`; ``scope``: the submitting
    token's agent patterns (empty: every agent), which the spec keeps for standing rollouts.
    """
    spec = _common(body, ROLLOUT_FIELDS, now, new_id, created_by, DEFAULT_TTL)
    spec = attrs.evolve(
        spec,
        strategy=parse_strategy(body.get("strategy", {})),
        standing=_flag(body, "standing"),
        allow_empty=_flag(body, "allow_empty"),
        scope=scope,
    )
    require(
        not (spec.standing and spec.agents),
        "standing",
        "needs a selector: a list of agents (target_agents) takes no agent that comes later",
    )
    _check_children(spec)
    return spec


class RolloutTooLarge(EventTooLarge):
    """Every child fits, but all of them together are more than :data:`MAX_ROLLOUT_BYTES`
    (answered 413 ``rollout_too_large``)."""


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"


def check_total(clusters: int, child: int, field: str) -> None:
    """:class:`RolloutTooLarge` when ``clusters`` children of ``child`` bytes each (as sent:
    :func:`child_bytes`) are more than :data:`MAX_ROLLOUT_BYTES`; ``field``: where the clusters
    come from (``target_agents`` or ``selector``)."""
    total = clusters * child
    if total > MAX_ROLLOUT_BYTES:
        raise RolloutTooLarge(
            field,
            f"{clusters} clusters x {_megabytes(child)} = {_megabytes(total)}, more than"
            f" {MAX_ROLLOUT_BYTES // (1024 * 1024)} MiB: split the rollout or the manifests",
        )


def parse_plan(
    body: Any,
    *,
    now: float,
    new_id: Callable[[], str],
    created_by: str | None = None,
    scope: tuple[str, ...] = (),
) -> RolloutSpec:
    """A ``POST /plans`` body as a plan's spec (kind ``plan``): targets and a payload whose
    action (apply or delete) is what is planned; ``ttl`` is the plan's lifetime. A plan is
    started everywhere at once: no strategy, and it does not stand."""
    spec = _common(body, PLAN_FIELDS, now, new_id, created_by, DEFAULT_PLAN_TTL)
    if spec.payload.wait_ready:
        raise InvalidEvent("payload.wait_ready", "is given when the plan is applied, not here")
    spec = attrs.evolve(spec, kind=RolloutKind.PLAN, scope=scope)
    _check_children(spec)
    return spec


def _common(
    body: Any,
    fields: frozenset[str],
    now: float,
    new_id: Callable[[], str],
    created_by: str | None,
    default_ttl: int,
) -> RolloutSpec:
    require(isinstance(body, Mapping), "body", "must be a JSON object")
    if "target_agent" in body:
        raise InvalidEvent("target_agent", f"give {_TARGETS_RULE}")
    extra = sorted(set(body) - fields)
    require(not extra, extra[0] if extra else "", "unknown field")
    rollout_id = _given_id(body) or new_id()
    check_type(body)
    selector, agents = _targets(body)
    require("payload" in body, "payload", "is required")
    return RolloutSpec(
        id=rollout_id,
        kind=RolloutKind.APPLY,
        payload=parse_payload(body["payload"]),
        created_at=now,
        ttl=whole_number(body.get("ttl", default_ttl), "ttl", 1, MAX_TTL),
        created_by=created_by_of(body, created_by),
        selector=selector,
        agents=agents,
        priority=whole_number(body.get("priority", 0), "priority", MIN_PRIORITY, MAX_PRIORITY),
        labels=labels_of(body.get("labels", {})),
    )


def _given_id(body: Mapping[str, Any]) -> str | None:
    if "id" not in body:
        return None
    value = body["id"]
    require(isinstance(value, str) and is_rollout_id(value), "id", f"must be {ROLLOUT_ID_RULE}")
    return str(value)


def _targets(body: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
    """``(selector, ())`` or ``("", agents)``: the canonical selector, or the agents sorted."""
    if ("target_agents" in body) == ("selector" in body):
        field = "selector" if "selector" in body else "target_agents"
        raise InvalidEvent(field, f"give {_TARGETS_RULE}")
    if "selector" in body:
        selector = _selector(body["selector"], "selector")
        require(
            not selector.selects_everything,
            "selector",
            "selects every agent; name what the agents have in common (e.g. 'env=prod') or"
            " list them in target_agents",
        )
        return str(selector), ()
    return "", _agents(body["target_agents"])


def _agents(value: Any) -> tuple[str, ...]:
    field = "target_agents"
    require(isinstance(value, list), field, "must be a list of agent ids")
    require(value, field, "must not be empty")
    require(len(value) <= MAX_TARGETS, field, f"holds {len(value)} agents, at most {MAX_TARGETS}")
    seen: set[str] = set()
    for index, agent in enumerate(value):
        require(
            isinstance(agent, str) and ids.is_agent_id(agent),
            f"{field}[{index}]",
            f"must be an agent id: {ids.AGENT_ID_RULE}",
        )
        require(agent not in seen, f"{field}[{index}]", f"names {agent!r} a second time")
        seen.add(agent)
    return tuple(sorted(seen))


def _selector(value: Any, field: str) -> Selector:
    require(isinstance(value, str), field, "must be a label selector (text)")
    try:
        return Selector.parse(value)
    except SelectorError as exc:
        raise InvalidEvent(field, str(exc)) from None


def _flag(body: Mapping[str, Any], field: str) -> bool:
    value = body.get(field, False)
    require(isinstance(value, bool), field, "must be true or false")
    return bool(value)


def parse_strategy(value: Any, field: str = "strategy") -> Strategy:
    """``{"max_parallel": n | "N%", "max_failures": n, "waves": [...]}``, each optional."""
    require(isinstance(value, Mapping), field, "must be an object")
    extra = sorted(set(value) - _STRATEGY_FIELDS)
    require(not extra, f"{field}.{extra[0] if extra else ''}", "unknown field")
    parallel, percent = _parallel(value.get("max_parallel", 0), f"{field}.max_parallel")
    failures = whole_number(value.get("max_failures", 0), f"{field}.max_failures", 0, MAX_FAILURES)
    return Strategy(
        max_parallel=parallel,
        max_parallel_percent=percent,
        max_failures=failures,
        waves=_waves(value.get("waves", []), f"{field}.waves"),
    )


def _parallel(value: Any, field: str) -> tuple[int, int]:
    """``(count, 0)`` or ``(0, percent)``."""
    if isinstance(value, str):
        found = _PERCENT.fullmatch(value)
        require(
            found,
            field,
            f"must be a whole number or a percentage 'N%' (1% to 100%), got {value[:20]!r}",
        )
        assert found is not None
        return 0, int(found.group(1))
    return whole_number(value, field, 0, MAX_PARALLEL), 0


def _waves(value: Any, field: str) -> tuple[Wave, ...]:
    require(isinstance(value, list), field, "must be a list of waves")
    require(len(value) <= MAX_WAVES, field, f"holds {len(value)} waves, at most {MAX_WAVES}")
    waves = []
    for index, item in enumerate(value):
        at = f"{field}[{index}]"
        require(isinstance(item, Mapping), at, "must be an object")
        extra = sorted(set(item) - _WAVE_FIELDS)
        require(not extra, f"{at}.{extra[0] if extra else ''}", "unknown field")
        selector = _selector(item.get("selector", ""), f"{at}.selector")
        last = index == len(value) - 1
        require(
            last or not selector.selects_everything,
            f"{at}.selector",
            "is required: only the last wave may take every cluster left",
        )
        approval = item.get("approval", False)
        require(isinstance(approval, bool), f"{at}.approval", "must be true or false")
        pause = whole_number(item.get("pause", 0), f"{at}.pause", 0, MAX_PAUSE)
        require(
            index > 0 or pause == 0,
            f"{at}.pause",
            "is the wait after the wave before, and the first wave has none (give the first"
            " wave approval to hold it until approved)",
        )
        waves.append(Wave(selector=str(selector), pause=pause, approval=bool(approval)))
    return tuple(waves)


def _largest_child(spec: RolloutSpec) -> Event:
    """The largest child event there can be: the longest agent id named, or the longest there
    is for a selector."""
    agent = max(spec.agents, key=len) if spec.agents else LONGEST_AGENT_ID
    payload = spec.payload
    if spec.kind is RolloutKind.PLAN:
        payload = attrs.evolve(payload, action=Action.PLAN, plan_of=payload.action)
    return Event(
        id=child_event_id(spec.id, agent),
        target_agent=agent,
        payload=payload,
        ttl=spec.ttl,
        created_at=spec.created_at,
        priority=spec.priority,
        labels=spec.labels,
        created_by=spec.created_by,
        rollout_id=spec.id,
    )


def child_bytes(spec: RolloutSpec) -> int:
    """Bytes the largest child event takes as sent (CPU work over the manifests)."""
    return sent_size(_largest_child(spec))


def _check_children(spec: RolloutSpec) -> None:
    """Every child event fits the agent channel, and the agents named, all of them
    together fit :data:`MAX_ROLLOUT_BYTES` (a selector's clusters are counted when it is
    resolved: :func:`check_total`)."""
    size = check_size(_largest_child(spec))
    if spec.agents:
        check_total(len(spec.agents), size, "target_agents")


@attrs.frozen
class PlanApply:
    """A ``POST /plans/{id}/apply`` body: how to roll out what was planned."""

    rollout_id: str | None = None
    """The new rollout's id (``None``: a fresh one)."""
    strategy: Strategy = attrs.field(factory=Strategy)
    wait_ready: bool = False
    ready_timeout: int = 0
    ttl: int = DEFAULT_TTL
    """Of the new rollout (as a submission's ``ttl``)."""


def parse_plan_apply(body: Any) -> PlanApply:
    """Every field optional (an empty object, or no body at all as ``{}``)."""
    require(isinstance(body, Mapping), "body", "must be a JSON object")
    extra = sorted(set(body) - _APPLY_FIELDS)
    require(not extra, extra[0] if extra else "", "unknown field")
    rollout_id = _given_id(body)
    wait = _flag(body, "wait_ready")
    timeout = 0
    if "ready_timeout" in body:
        require(wait, "ready_timeout", "is only given with wait_ready: true")
        timeout = whole_number(body["ready_timeout"], "ready_timeout", 1, MAX_READY_TIMEOUT)
    return PlanApply(
        rollout_id=rollout_id,
        strategy=parse_strategy(body.get("strategy", {})),
        wait_ready=wait,
        ready_timeout=timeout,
        ttl=whole_number(body.get("ttl", DEFAULT_TTL), "ttl", 1, MAX_TTL),
    )
