"""The control plane's metrics, in Prometheus' text format (``GET /metrics``, a ``read`` token
that reaches every agent).

Each control plane has its own :class:`CpMetrics` and registry (never the library's global
one), so that several in one process do not mix. Label values come from fixed sets of our own
(states, phases, store operations, refusal reasons): never an agent's id, an event's id, or
anything else a client or an agent chose, so the number of series is bounded.

Counters and histograms move where things happen (:mod:`.intake`, :mod:`.progress`,
:mod:`.delivery`, the store's calls, the API's answers). What is a state rather than a count
(agents connected, events waiting) is read when scraped (:class:`_Scraped`); the one figure
that needs the store, the unfinished events by state, is asked for at most every
:data:`COUNTS_MAX_AGE` seconds however often the endpoint is scraped.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable, Iterator
from typing import Final, Protocol

import trio
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, choose_encoder, generate_latest
from prometheus_client.registry import Collector

from transporter.cp.live import LiveAgents
from transporter.protocol.model import AgentStatus, EventRecord, EventState, Phase
from transporter.store.base import Store, StoreUnavailable

EVENT_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
"""Seconds: an event on an idle agent takes tens of milliseconds, a large one or one that
waited for its agent minutes; TTLs are up to hours."""
STORE_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)
"""Seconds: a SQLite read is well under a millisecond, a durable commit a few; 10 is the
store's own call timeout."""
COUNTS_MAX_AGE: Final = 5.0
"""Seconds the unfinished events' counts are reused before the store is asked again."""
STAGES: Final = (
    "queued",
    "assigned",
    *(p.value for p in Phase if p.value not in ("completed", "failed")),
)
"""Where an event spends its time: waiting for its agent (``queued``), sent and not yet
acknowledged (``assigned``), then the agent's phases."""
ENDED: Final = tuple(state.value for state in EventState if state.terminal)
VIA: Final = ("single", "batch")
"""How events are accepted: ``POST /events`` one at a time, or ``POST /events/batch``."""
REDELIVERY: Final = ("ack_timeout", "reconnect")
REASONS: Final = {
    400: "invalid",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    411: "invalid",
    413: "too_large",
    414: "too_large",
    415: "invalid",
    422: "invalid",
    429: "rate_limited",
    431: "too_large",
    503: "unavailable",
}
"""Refused requests by the reason their status says; any other 4xx is ``other``, 5xx ``error``."""


def reason_of(status: int) -> str | None:
    """The refusal reason of an answer's ``status``; ``None`` for an answer that is no refusal."""
    if status < 400:
        return None
    return REASONS.get(status, "other" if status < 500 else "error")


class Counted(Protocol):
    """What counts connections refused at a listener (:class:`transporter.cp.connections.Gate`)."""

    refused: int


class CpMetrics:
    """One control plane's metrics, and the registry that holds them."""

    def __init__(self) -> None:
        # No *_created series beside each counter and histogram: the text format has no use
        # for them, and they would double what is scraped. (The library's one switch.)
        disable_created_metrics()  # type: ignore[no-untyped-call]  # the library leaves it untyped
        self.registry = CollectorRegistry(auto_describe=True)
        self._events(self.registry)
        self._calls(self.registry)
        self._zeros()
        self.scraped = _Scraped()
        self.registry.register(self.scraped)
        self._render = trio.CapacityLimiter(1)

    def _events(self, r: CollectorRegistry) -> None:
        self.accepted = Counter(
            "transporter_events_accepted",
            "Events accepted and stored, by how they came.",
            ["via"],
            registry=r,
        )
        self.ended = Counter(
            "transporter_events_ended",
            "Events that ended, by their final state.",
            ["state"],
            registry=r,
        )
        self.duration = Histogram(
            "transporter_event_duration_seconds",
            "Seconds from an event's acceptance to its end, by its final state.",
            ["state"],
            buckets=EVENT_BUCKETS,
            registry=r,
        )
        self.stage = Histogram(
            "transporter_event_stage_seconds",
            "Seconds an ended event spent in each stage: queued, assigned (sent, not yet"
            " acknowledged), then the agent's phases received, validating, applying, verifying.",
            ["stage"],
            buckets=EVENT_BUCKETS,
            registry=r,
        )
        self.redeliveries = Counter(
            "transporter_redeliveries",
            "Events sent to an agent again: not acknowledged in time (ack_timeout), or sent"
            " again on a new connection while already in progress (reconnect).",
            ["reason"],
            registry=r,
        )

    def _calls(self, r: CollectorRegistry) -> None:
        self.store_seconds = Histogram(
            "transporter_store_operation_seconds",
            "Seconds each call to the store took, by operation.",
            ["operation"],
            buckets=STORE_BUCKETS,
            registry=r,
        )
        self.store_failures = Counter(
            "transporter_store_operation_failures",
            "Calls to the store that raised (unavailable, timed out, or refused), by operation.",
            ["operation"],
            registry=r,
        )
        self.refused = Counter(
            "transporter_api_refused_requests",
            "API requests answered with a refusal or an error, by reason.",
            ["reason"],
            registry=r,
        )

    def _zeros(self) -> None:
        """Every series of the fixed label sets, at zero: a rate needs its series from the
        start, not from the first increment."""
        for via in VIA:
            self.accepted.labels(via)
        for state in ENDED:
            self.ended.labels(state)
            self.duration.labels(state)
        for stage in STAGES:
            self.stage.labels(stage)
        for reason in REDELIVERY:
            self.redeliveries.labels(reason)
        for reason in sorted(set(REASONS.values()) | {"other", "error"}):
            self.refused.labels(reason)

    # --- hooks -----------------------------------------------------------------------------

    def accepted_events(self, via: str, count: int = 1) -> None:
        if count:
            self.accepted.labels(via).inc(count)

    def event_ended(self, record: EventRecord) -> None:
        """``record`` has just reached its final state: count it, and time its stages."""
        state = record.state.value
        self.ended.labels(state).inc()
        self.duration.labels(state).observe(max(0.0, record.updated_at - record.event.created_at))
        for stage, seconds in stage_times(record).items():
            self.stage.labels(stage).observe(seconds)

    def redelivered(self, reason: str) -> None:
        self.redeliveries.labels(reason).inc()

    def store_call(self, operation: str, seconds: float, *, failed: bool) -> None:
        self.store_seconds.labels(operation).observe(seconds)
        if failed:
            self.store_failures.labels(operation).inc()

    def answered(self, status: int) -> None:
        """An API answer went out with ``status``: counted when it refuses."""
        reason = reason_of(status)
        if reason is not None:
            self.refused.labels(reason).inc()

    # --- what is read at scrape time --------------------------------------------------------

    def watch(self, live: LiveAgents, *, api: Counted, agent_channel: Counted) -> None:
        """Read the connected agents from ``live``, and the connections each listener
        refused, whenever scraped."""
        self.scraped.live = live
        self.scraped.listeners = {"api": api, "agent_channel": agent_channel}

    async def render(self, store: Store, accept: str | None) -> tuple[bytes, str]:
        """The exposition in the format ``accept`` asks for (Prometheus' text format unless it
        asks for OpenMetrics), and its content type."""
        now = trio.current_time()
        if self.scraped.counted_at is None or now - self.scraped.counted_at >= COUNTS_MAX_AGE:
            self.scraped.counted_at = now
            # A store that does not answer keeps the last counts: the other figures (its
            # failures among them) matter most then.
            with contextlib.suppress(StoreUnavailable):
                self.scraped.unfinished = await store.count_unfinished()
        try:
            encode, content_type = choose_encoder(accept or "")
        except (ValueError, TypeError):  # a malformed Accept (a version of 1.a): plain format
            encode, content_type = generate_latest, CONTENT_TYPE_PLAIN_0_0_4
        if not content_type.isprintable() or not content_type.isascii():  # the version's line feed
            encode, content_type = generate_latest, CONTENT_TYPE_PLAIN_0_0_4
        text = await trio.to_thread.run_sync(encode, self.registry, limiter=self._render)
        return text, content_type


def stage_times(record: EventRecord) -> dict[str, float]:
    """Seconds ``record`` spent in each of :data:`STAGES`, from its timeline (a stage entered
    twice, after its agent went away, counts both times). The agent's phases are stamped by
    its clock, the rest by ours: a step back between the two counts as nothing."""
    times: dict[str, float] = {}
    timeline = record.timeline
    for entry, after in itertools.pairwise(timeline):
        stage = entry.phase.value if entry.phase is not None else entry.state.value
        if stage in STAGES:
            times[stage] = times.get(stage, 0.0) + max(0.0, after.at - entry.at)
    return times


class _Scraped(Collector):
    """The gauges read when scraped: agents connected and unhealthy, unfinished events by
    state; and the connections each listener refused."""

    def __init__(self) -> None:
        self.live: LiveAgents | None = None
        self.listeners: dict[str, Counted] = {}
        self.unfinished: dict[EventState, int] = {}
        self.counted_at: float | None = None

    def collect(self) -> Iterator[Metric]:
        connections = [] if self.live is None else self.live.all()
        yield _gauge(
            "transporter_agents_connected",
            "Agents connected to this control plane.",
            [((), len(connections))],
        )
        unhealthy = sum(1 for c in connections if c.status is AgentStatus.UNHEALTHY)
        yield _gauge(
            "transporter_agents_unhealthy",
            "Agents connected but silent for longer than the missed heartbeats allow.",
            [((), unhealthy)],
        )
        yield _gauge(
            "transporter_events_unfinished",
            "Events not yet ended, by state: queued (the outbox, waiting for the agent),"
            " assigned (sent, not acknowledged), in_progress. The whole store's, counted at"
            f" most every {COUNTS_MAX_AGE:g} s.",
            [((state.value,), self.unfinished.get(state, 0)) for state in _OPEN],
            labels=["state"],
        )
        refused = CounterMetricFamily(
            "transporter_connections_refused",
            "Connections closed at once because a listener had too many open.",
            labels=["listener"],
        )
        for name, gate in sorted(self.listeners.items()):
            refused.add_metric([name], gate.refused)
        yield refused


_OPEN: Final = tuple(state for state in EventState if not state.terminal)


def _gauge(
    name: str,
    documentation: str,
    values: Iterable[tuple[tuple[str, ...], float]],
    *,
    labels: list[str] | None = None,
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=labels or [])
    for label_values, value in values:
        family.add_metric(list(label_values), value)
    return family
