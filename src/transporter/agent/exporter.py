"""The agent's metrics kept and served: ``--metrics-listen HOST:PORT`` serves
``GET /metrics`` in Prometheus' text format, from the agent's own registry.

Imported only when that flag is given (:mod:`.metrics` has the hooks without the library).
Label values come from fixed sets (HTTP methods, outcomes, states, results), never from an
event, a manifest or the control plane, so the series are bounded.

The listener is a small HTTP/1.1 responder of our own (the agent does not load an HTTP
server): one request per connection, at most :data:`MAX_CONNECTIONS` at once (more are closed
at once), a request head of at most :data:`MAX_HEAD` bytes, and :data:`TIMEOUT` seconds for
the whole exchange. It needs no token: it says nothing of what the events hold, and it is off
unless asked for; bind it where only the scraper reaches (the pod's address, or localhost).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Final

import trio
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, choose_encoder, generate_latest

from transporter.agent.metrics import AgentMetrics, MetricsListenError
from transporter.config.values import Address
from transporter.protocol.model import Action, EventState, ResourceResult, ResourceStatus

log = logging.getLogger(__name__)

MAX_CONNECTIONS: Final = 8
MAX_HEAD: Final = 8192
"""Bytes of a request's line and headers at most (a scraper sends a few hundred)."""
TIMEOUT: Final = 10.0
"""Seconds for one connection: its request read, the answer written."""
VERBS: Final = ("get", "post", "put", "patch", "delete")
"""The HTTP methods the agent uses; any other is counted as ``other``."""
OUTCOMES: Final = ("2xx", "3xx", "4xx", "5xx", "timeout", "error")
KUBE_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
"""Seconds: an API server answers in milliseconds; our request timeout is 30."""


class PrometheusMetrics(AgentMetrics):
    """The agent's metrics in a registry of its own."""

    def __init__(self) -> None:
        # No *_created series beside each counter and histogram: the text format has no use
        # for them, and they would double what is scraped. (The library's one switch.)
        disable_created_metrics()  # type: ignore[no-untyped-call]  # the library leaves it untyped
        self.registry = CollectorRegistry(auto_describe=True)
        self._connection(self.registry)
        self._events(self.registry)
        self._kube(self.registry)

    def _connection(self, r: CollectorRegistry) -> None:
        self.up = Gauge(
            "transporter_agent_connected",
            "1 while a connection to the control plane is registered, else 0.",
            registry=r,
        )
        self.reconnects = Counter(
            "transporter_agent_reconnects",
            "Connections registered with the control plane after the first.",
            registry=r,
        )
        self.connections = 0

    def _events(self, r: CollectorRegistry) -> None:
        self.received = Counter(
            "transporter_agent_events_received",
            "Events delivered by the control plane (a delivery again included).",
            registry=r,
        )
        self.ended = Counter(
            "transporter_agent_events_ended",
            "Events this agent ran, by how they ended.",
            ["state"],
            registry=r,
        )
        self.resources = Counter(
            "transporter_agent_resources",
            "Objects of the events this agent ran, by action (apply, delete) and result.",
            ["action", "result"],
            registry=r,
        )
        for state in (EventState.COMPLETED, EventState.FAILED):
            self.ended.labels(state.value)
        for result in ResourceStatus:
            self.resources.labels(Action.APPLY.value, result.value)

    def _kube(self, r: CollectorRegistry) -> None:
        self.kube_seconds = Histogram(
            "transporter_agent_kube_request_seconds",
            "Seconds each request to the cluster's API server took, by HTTP method.",
            ["verb"],
            buckets=KUBE_BUCKETS,
            registry=r,
        )
        self.kube_requests = Counter(
            "transporter_agent_kube_requests",
            "Requests to the cluster's API server, by HTTP method and outcome (the answer's"
            " status class, or timeout, or error when none came).",
            ["verb", "outcome"],
            registry=r,
        )
        self.kube_retries = Counter(
            "transporter_agent_kube_retries",
            "Requests to the API server tried again after a transient failure, by HTTP method.",
            ["verb"],
            registry=r,
        )

    # --- the hooks --------------------------------------------------------------------------

    def connected(self, up: bool) -> None:
        self.up.set(1 if up else 0)
        if up:
            self.connections += 1
            if self.connections > 1:
                self.reconnects.inc()

    def delivered(self) -> None:
        self.received.inc()

    def event_ended(
        self, state: EventState, action: Action, results: Sequence[ResourceResult]
    ) -> None:
        self.ended.labels(state.value).inc()
        for result in results:
            self.resources.labels(action.value, result.status.value).inc()

    def kube_answered(self, verb: str, seconds: float, outcome: str) -> None:
        verb = verb if verb in VERBS else "other"
        self.kube_seconds.labels(verb).observe(seconds)
        self.kube_requests.labels(verb, outcome if outcome in OUTCOMES else "error").inc()

    def kube_retried(self, verb: str) -> None:
        self.kube_retries.labels(verb if verb in VERBS else "other").inc()


async def serve_metrics(
    address: Address,
    metrics: PrometheusMetrics,
    *,
    per_connection: float = TIMEOUT,
    task_status: trio.TaskStatus[list[Address]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``GET /metrics`` on ``address`` until cancelled; ``started()`` gives where.
    ``per_connection``: seconds for one connection."""
    try:
        listeners = await trio.open_tcp_listeners(address.port, host=address.host or None)
    except OSError as exc:
        raise MetricsListenError(
            f"cannot listen on {address} (--metrics-listen): {exc.strerror or exc}"
        ) from None
    bound = [Address(*listener.socket.getsockname()[:2]) for listener in listeners]
    for where in bound:
        log.info("metrics listening on http://%s/metrics", where)
    responder = Responder(metrics.registry, timeout=per_connection)
    task_status.started(bound)
    await trio.serve_listeners(responder.handle, listeners)


class Responder:
    """Answers each connection's one request, within the bounds above."""

    def __init__(self, registry: CollectorRegistry, *, timeout: float = TIMEOUT) -> None:
        self.registry = registry
        self.timeout = timeout
        self.open = 0

    async def handle(self, stream: trio.SocketStream) -> None:
        if self.open >= MAX_CONNECTIONS:
            await trio.aclose_forcefully(stream)
            return
        self.open += 1
        try:
            with trio.move_on_after(self.timeout):
                head = await read_head(stream)
                if head != b"":  # b"": it closed before a whole request
                    await stream.send_all(self.answer(head))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the scraper went away
        finally:
            self.open -= 1
            await trio.aclose_forcefully(stream)

    def answer(self, head: bytes | None) -> bytes:
        """The whole answer to a request whose head is ``head`` (``None``: over the limit)."""
        if head is None:
            return response(431, "Request Header Fields Too Large", b"request head too large\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return response(400, "Bad Request", b"not an HTTP/1.x request\n")
        method, target = parts[0], parts[1]
        if target.split("?", 1)[0] != "/metrics":
            return response(404, "Not Found", b"the metrics are at /metrics\n")
        if method not in ("GET", "HEAD"):
            return response(405, "Method Not Allowed", b"GET only\n", [("Allow", "GET, HEAD")])
        encode, content_type = _encoder(header(lines[1:], "accept"))
        body = encode(self.registry)
        answer = response(200, "OK", body, content_type=content_type)
        return answer[: -len(body)] if method == "HEAD" and body else answer


async def read_head(stream: trio.abc.ReceiveStream) -> bytes | None:
    """A request's line and headers (without the blank line that ends them); ``None`` when
    they are over :data:`MAX_HEAD` bytes, ``b""`` when the peer closed before their end."""
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > MAX_HEAD:
            return None
        chunk = await stream.receive_some(MAX_HEAD)
        if not chunk:
            return b""
        data += chunk
    head = data.split(b"\r\n\r\n", 1)[0]
    return head if len(head) <= MAX_HEAD else None


def header(lines: Sequence[str], name: str) -> str:
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip().lower() == name:
            return value.strip()
    return ""


def _encoder(accept: str) -> tuple[Callable[[CollectorRegistry], bytes], str]:
    """The library's choice for ``accept``; the plain format for a malformed one. The library
    compares a version's parts as numbers (``1.a`` raises TypeError) and copies the version
    into the Content-Type it gives (a bare line feed in it would start a header of ours)."""
    try:
        encode, content_type = choose_encoder(accept)
    except (ValueError, TypeError):
        return generate_latest, CONTENT_TYPE_PLAIN_0_0_4
    if not content_type.isprintable() or not content_type.isascii():
        return generate_latest, CONTENT_TYPE_PLAIN_0_0_4
    return encode, content_type


def response(
    status: int,
    reason: str,
    body: bytes,
    headers: Sequence[tuple[str, str]] = (),
    *,
    content_type: str = "text/plain; charset=utf-8",
) -> bytes:
    lines = [
        f"HTTP/1.1 {status} {reason}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{key}: {value}" for key, value in headers),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
