"""Settings of ``transporter produce``: ``k8s`` and ``plan`` (submit), ``get`` (look),
``approve``, ``cancel`` and ``close`` (act on a rollout or an event), ``apply`` (a plan)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import attrs

from transporter.protocol.rollout import Strategy

type OutputFormat = Literal["text", "wide", "name", "json", "yaml"]


@attrs.frozen(kw_only=True)
class Targets:
    """Whom a submission is for: exactly one of an agent (a single event), a list of agents or
    a label selector (a rollout: one child event per matched agent)."""

    agent: str | None = None
    agents: tuple[str, ...] = ()
    selector: str | None = None
    """Canonical label selector text (``""``: every agent)."""

    @property
    def rollout(self) -> bool:
        return self.agent is None


@attrs.frozen(kw_only=True)
class RolloutOptions:
    """How a rollout goes: its strategy, whether it stands, its id."""

    rollout_id: str | None = None
    """The rollout's id (a repeat with the same spec is answered ``exists``); ``None``: the
    control plane makes one."""
    strategy: Strategy = attrs.field(factory=Strategy)
    standing: bool = False
    allow_empty: bool = False


@attrs.frozen(kw_only=True)
class Reach:
    """How every producer command reaches the control plane and shows what comes back."""

    cp_url: str = "https://localhost:8080"
    timeout: float = 300.0
    """Seconds ``--wait`` (``--watch``) follows before giving up (exit code 1)."""
    output: OutputFormat = "text"
    no_headers: bool = False
    """Tables without their header line."""
    log_format: Literal["text", "json"] = "text"
    """How log lines (a library's warnings) look on stderr."""
    token: str | None = attrs.field(default=None, repr=False)
    """The API token, sent as ``Authorization: Bearer``; ``None``: none is sent."""
    ca_cert: Path | None = None
    """The CA that issued the control plane's certificate (its ``DATA_DIR/ca.crt``);
    ``None``: the system's trust store."""


@attrs.frozen(kw_only=True)
class ProduceConfig(Reach):
    """Settings of ``transporter produce k8s``."""

    agent: str | None = None
    """The target of a single event; ``None``: :attr:`targets` names a rollout's."""
    manifests: tuple[Path, ...]
    mode: Literal["http", "queue"] = "http"
    """``queue``: appended to the control planes' queue on :attr:`redis` (``--wait`` follows
    it through the API all the same)."""
    redis: str | None = attrs.field(default=None, repr=False)
    """The Redis URL of the queue (``--mode queue``); it may hold a password."""
    open_queue: Callable[[str], Any] | None = attrs.field(default=None, repr=False, eq=False)
    """Opens the queue at a Redis URL (the command line gives it: the producer never touches
    the store itself); see :mod:`transporter.produce.queue`."""
    wait: bool = False
    delete: bool = False
    """Delete the objects the manifests name, instead of applying them."""
    ttl: int | None = None
    """Seconds the event may take before it expires; ``None``: the control plane's default."""
    wait_ready: bool = False
    """The agent waits until each applied object is ready (kstatus rules)."""
    ready_timeout: int | None = None
    targets: Targets | None = None
    """A rollout's targets (``--agents`` or ``--selector``); ``None``: the single :attr:`agent`."""
    rollout: RolloutOptions = attrs.field(factory=RolloutOptions)


@attrs.frozen(kw_only=True)
class PlanConfig(Reach):
    """Settings of ``transporter produce plan``: what an apply would do on each cluster."""

    targets: Targets
    manifests: tuple[Path, ...]
    delete: bool = False
    ttl: int | None = None
    """Seconds the plan lives (and may be applied); ``None``: the control plane's, 1 h."""
    plan_id: str | None = None


@attrs.frozen(kw_only=True)
class ApplyPlanConfig(Reach):
    """Settings of ``transporter produce apply PLAN``."""

    plan_id: str
    rollout: RolloutOptions = attrs.field(factory=RolloutOptions)
    wait: bool = False
    wait_ready: bool = False
    ready_timeout: int | None = None


ROLLOUT_OPS = ("approve", "cancel", "close")


@attrs.frozen(kw_only=True)
class RolloutOpConfig(Reach):
    """Settings of ``transporter produce approve|cancel|close``."""

    op: Literal["approve", "cancel", "close"]
    name: str
    """The rollout's id; for ``cancel``, ``rollout/ID``, ``event/ID`` or a bare id (a rollout
    if there is one with that id, else an event)."""
    wave: int | None = None
    """``approve``: the wave to release (``None``: the one awaiting approval)."""


QUERY_KINDS = (
    *("events", "event", "agents", "agent", "rollouts", "rollout", "plans", "plan"),
    "dead-letters",
)


@attrs.frozen(kw_only=True)
class QueryConfig(Reach):
    """Settings of ``transporter produce get``."""

    what: Literal[
        "events", "event", "agents", "agent", "rollouts", "rollout", "plans", "plan", "dead-letters"
    ]
    name: str | None = None
    agent: str | None = None
    state: str | None = None
    kind: Literal["apply", "plan"] | None = None
    """``get rollouts``: only rollouts of this kind."""
    limit: int = 50
    watch: bool = False
