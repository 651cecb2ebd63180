"""What the agent counts, as hooks: the places that do the work call these.

This class does nothing, and imports nothing: it is the agent's metrics when
``--metrics-listen`` is not given, so that an agent without metrics never loads the client
library (memory, start time). :class:`transporter.agent.exporter.PrometheusMetrics` keeps the
figures and serves them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import trio

from transporter.config.values import Address
from transporter.protocol.model import Action, EventState, ResourceResult


class AgentMetrics:
    """The hooks; each does nothing here."""

    def connected(self, up: bool) -> None:
        """A connection to the control plane was registered (``True``) or ended (``False``)."""

    def delivered(self) -> None:
        """The control plane delivered an event (again, perhaps)."""

    def event_ended(
        self, state: EventState, action: Action, results: Sequence[ResourceResult]
    ) -> None:
        """An event this agent ran ended in ``state``; ``results``: each object's."""

    def kube_answered(self, verb: str, seconds: float, outcome: str) -> None:
        """A request to the API server ended: see
        :class:`transporter.kube.transport.RequestObserver`."""

    def kube_retried(self, verb: str) -> None:
        """A request to the API server is tried again."""


class MetricsListenError(Exception):
    """``--metrics-listen`` cannot be had: the message says which address and why."""


async def start_metrics(
    stack: contextlib.AsyncExitStack[bool | None], address: Address | None
) -> AgentMetrics:
    """The agent's metrics: served on ``address`` until ``stack`` closes, or (``None``) the
    hooks that do nothing, without loading the client library."""
    if address is None:
        return AgentMetrics()
    from transporter.agent.exporter import PrometheusMetrics, serve_metrics  # lazy on purpose

    metrics = PrometheusMetrics()
    nursery = await stack.enter_async_context(trio.open_nursery())
    stack.callback(nursery.cancel_scope.cancel)
    await nursery.start(serve_metrics, address, metrics)
    return metrics
