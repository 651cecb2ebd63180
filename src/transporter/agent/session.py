"""The agent's one connection to the control plane: dial out, register, heartbeat, receive
events, send reports; and when the connection fails, dial again with jittered exponential
backoff, forever. Unacknowledged reports survive reconnects and are sent again.

A connection can die without ending (a half-open TCP connection: the far side or a middlebox
went away without a FIN): each heartbeat goes with a WebSocket ping, and a connection with no
pong within the ``dead_after`` the control plane named in its welcome is dropped and dialled
again.

With a bundle (secure by default) the connection is TLS with the agent's client certificate,
trusting the control plane's CA only, and every delivered event is checked against the control
plane's signing key before anything else: one that does not match (changed in the store after
it was accepted, or never signed) is refused and reported ``failed``, never run.
"""

from __future__ import annotations

import logging
import random
import ssl
import time
from collections.abc import Sequence

import attrs
import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    HandshakeError,
    WebSocketConnection,
)

from transporter import __version__
from transporter.agent.dial import DeadConnection, DialError, connect
from transporter.agent.reports import Reports
from transporter.agent.worker import DEFAULT_CONCURRENCY, Ledger, Runner, Worker
from transporter.protocol import codec, signing
from transporter.protocol.messages import (
    BATCHES,
    PROTOCOL_VERSION,
    REPLAYS,
    AckBatch,
    Deliver,
    DeliverBatch,
    Error,
    Heartbeat,
    Message,
    Receipt,
    Received,
    Register,
    ReportBatch,
    Status,
    StatusAck,
    Welcome,
)
from transporter.protocol.model import AgentInfo, Event

log = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class Backoff:
    """Delays between connection attempts: doubling from ``first`` up to ``cap``, each drawn
    between half and all of that (jitter), so that many agents do not return in step."""

    first: float = 1.0
    cap: float = 60.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        ceiling = min(self.cap, self.first * 2 ** min(attempt, 32))
        return rng.uniform(ceiling / 2, ceiling)


class Rejected(Exception):
    """The control plane refused this agent (bad registration); retrying will not help soon."""


CLOCK_SKEW = 300.0
"""Seconds an event may arrive after its TTL passed (by this host's clock) and still run: the
control plane never sends one after, but the two clocks may disagree."""


class Silent(DeadConnection):
    """The control plane did not answer a ping in time: the connection is taken for dead."""


INLINE_VERIFY_BYTES = 256 * 1024
"""Events with fewer bytes of manifests are checked on the event loop; larger ones (hashing
some MB) in a worker thread, so that heartbeats and reports keep going."""

BATCH_RECEIVED = 256
"""Acknowledgements of deliveries sent in one ``reports`` message at most."""
BATCH_STATUSES = 64
"""Status reports sent in one ``reports`` message at most."""
BATCH_RESOURCES = 16
"""A report with more resources' results than this is sent in a message of its own (it may
be large; a batch of them could pass the control plane's message size limit)."""
BATCH_MESSAGE_CHARS = 4096

DEFAULT_DEAD_HEARTBEATS = 4
"""Heartbeat intervals without a pong before the connection is dropped, when the control plane
did not say (``dead_after`` 0 in its welcome)."""


class Session:
    def __init__(
        self,
        info: AgentInfo,
        cp_url: str,
        runner: Runner,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        reports: Reports | None = None,
        backoff: Backoff = Backoff(),
        connect_timeout: float = 10.0,
        rng: random.Random | None = None,
        ssl_context: ssl.SSLContext | None = None,
        signing_key: Ed25519PublicKey | None = None,
        ledger: Ledger | None = None,
    ) -> None:
        """``ssl_context``: for a ``wss://`` URL, the bundle's (its certificate, the control
        plane's CA). ``signing_key``: the control plane's, from the bundle; ``None`` runs
        events unchecked (``--insecure-plain-ws`` without a bundle only). ``ledger``: where
        what ran is written (:mod:`.journal`), so that nothing runs twice."""
        self.info = info
        self.cp_url = cp_url
        self.ssl_context = ssl_context if cp_url.startswith("wss://") else None
        self.signing_key = signing_key
        self._verifying = trio.CapacityLimiter(1)
        self.worker = Worker(runner, self, concurrency=concurrency, ledger=ledger)
        self.reports = reports or Reports()
        self.backoff = backoff
        self.connect_timeout = connect_timeout
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not secrets
        self._outgoing_bell = trio.Event()
        self._received: list[Receipt] = []
        self._up_since: float | None = None
        self._outage_since: float | None = None
        self._outage_reason = ""
        self.connected = trio.Event()
        """Set while a registered connection is up (for tests and the demo)."""
        self.connections = 0

    # --- Sink, for the worker -----------------------------------------------------------------

    def received(self, event_id: str) -> None:
        self._received.append(Receipt(event_id, time.time()))
        self._outgoing_bell.set()

    def unacknowledged(self, status: Status) -> bool:
        return self.reports.is_pending(status)

    def report(self, status: Status) -> None:
        self.reports.add(status)
        self._outgoing_bell.set()

    # --- connection loop ----------------------------------------------------------------------

    async def run(self) -> None:
        """Execute events and keep connected, until cancelled."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self.worker.run)
            await self._connect_forever()

    async def _connect_forever(self) -> None:
        attempt = 0
        while True:
            reason = "connection closed"
            try:
                await self._connect_once()
            except* (
                OSError,
                HandshakeError,
                ConnectionClosed,
                trio.TooSlowError,
                trio.BrokenResourceError,
                codec.ProtocolError,
                Rejected,
                Silent,
                DialError,
            ) as group:
                reason = _describe(group.exceptions[0])
            except* Exception as group:
                # A bug of ours: say so loudly, then carry on like after any other outage.
                log.error("agent session failed", exc_info=group)
                reason = _describe(group.exceptions[0])
            if self._up_since is not None:
                attempt = 0  # a connection that was up resets the backoff
                self._up_since = None
            if self._outage_since is None:
                # Logged once per outage, not once per attempt (and again when why changes:
                # a connection closed, then refused from then on, says so).
                self._outage_since = time.monotonic()
                log.warning("control plane %s: %s; reconnecting with backoff", self.cp_url, reason)
            elif reason != self._outage_reason:
                log.warning("control plane %s still unreachable: %s", self.cp_url, reason)
            else:
                log.debug("control plane still unreachable: %s", reason)
            self._outage_reason = reason
            delay = self.backoff.delay(attempt, self.rng)
            attempt += 1
            await trio.sleep(delay)

    async def _connect_once(self) -> None:
        async with connect(
            self.cp_url,
            ssl_context=self.ssl_context,
            max_message_size=codec.MAX_MESSAGE_BYTES,
            connect_timeout=self.connect_timeout,
        ) as ws:
            with trio.fail_after(self.connect_timeout):
                await ws.send_message(
                    codec.encode(Register(agent=self.info, protocol=PROTOCOL_VERSION))
                )
                welcome = await self._expect_welcome(ws)
            await self._registered(ws, welcome)

    async def _registered(self, ws: WebSocketConnection, welcome: Welcome) -> None:
        self.connections += 1
        self._up_since = time.monotonic()
        if self._outage_since is not None:
            log.info(
                "reconnected to %s after %.1f s", self.cp_url, self._up_since - self._outage_since
            )
            self._outage_since = None
        else:
            log.info(
                "registered with %s as %s (heartbeat every %.0f s)",
                self.cp_url,
                welcome.agent_id,
                welcome.heartbeat_interval,
            )
        self.connected.set()
        try:
            async with trio.open_nursery() as nursery:
                interval = welcome.heartbeat_interval
                dead_after = welcome.dead_after or interval * DEFAULT_DEAD_HEARTBEATS
                nursery.start_soon(self._heartbeat, ws, interval, dead_after)
                nursery.start_soon(self._write, ws, welcome.protocol)
                nursery.start_soon(self._read, ws)
        finally:
            self.connected = trio.Event()

    async def _expect_welcome(self, ws: WebSocketConnection) -> Welcome:
        message = codec.decode(await ws.get_message())
        if isinstance(message, Error):
            raise Rejected(f"{message.code}: {message.message}")
        if not isinstance(message, Welcome):
            raise Rejected(f"expected welcome, got {message.TAG}")
        return message

    async def _heartbeat(self, ws: WebSocketConnection, interval: float, dead_after: float) -> None:
        """A heartbeat and a ping every ``interval``; raises :class:`Silent` when ``dead_after``
        passed since the last pong (sending may block too, on a connection nobody reads)."""
        answered = trio.current_time()  # the welcome was the last answer
        while True:
            started = trio.current_time()
            with trio.move_on_at(answered + dead_after) as waiting:
                await ws.send_message(codec.encode(Heartbeat(at=time.time())))
                await ws.ping()
            if waiting.cancelled_caught:
                raise Silent(f"no answer from the control plane for {dead_after:g} s")
            answered = trio.current_time()
            await trio.sleep_until(started + interval)

    async def _write(self, ws: WebSocketConnection, protocol: int) -> None:
        """The one task that sends events' messages: acks first, then reports in order; in
        ``reports`` batches when the control plane speaks them (``protocol``)."""
        self.reports.resend_all()  # a new connection: what was not acknowledged goes again
        batches = protocol >= BATCHES
        while True:
            self._outgoing_bell = trio.Event()
            received, self._received = self._received, []
            statuses = self.reports.take_unsent()
            if protocol < REPLAYS:  # a control plane that does not know the word
                statuses = [attrs.evolve(s, replay=False) if s.replay else s for s in statuses]
            messages: Sequence[Received | Status | ReportBatch] = (
                batched(received, statuses)
                if batches
                else [*(Received(receipt.event_id) for receipt in received), *statuses]
            )
            for message in messages:
                await ws.send_message(codec.encode(message))
            await self._outgoing_bell.wait()

    async def _read(self, ws: WebSocketConnection) -> None:
        while True:
            text = await ws.get_message()
            try:
                message: Message = codec.decode(text)
            except codec.ProtocolError as exc:
                log.warning("control plane sent an invalid message: %s", exc.message)
                continue
            if isinstance(message, Deliver):
                await self._take(message.event)
            elif isinstance(message, DeliverBatch):
                for event in message.events:
                    await self._take(event)
            elif isinstance(message, StatusAck):
                self.reports.ack(message.event_id, message.seq)
            elif isinstance(message, AckBatch):
                for ack in message.acks:
                    self.reports.ack(ack.event_id, ack.seq)
            elif isinstance(message, Error):
                log.warning(
                    "control plane refused a message: %s: %s", message.code, message.message
                )
            else:
                log.warning("control plane sent an unexpected %r message", message.TAG)

    async def _take(self, event: Event) -> None:
        problem = await self._check(event)
        if problem is None:
            await self.worker.offer(event)
        else:
            self.worker.refuse(event, problem)

    async def _check(self, event: Event) -> str | None:
        """Why ``event`` must not run (its report's message), or ``None``: it is this agent's,
        signed by the control plane as it is now."""
        if self.signing_key is None:
            return None
        key = self.signing_key
        try:
            if sum(len(text) for text in event.payload.manifests) < INLINE_VERIFY_BYTES:
                signing.verify(event, key)
            else:
                await trio.to_thread.run_sync(signing.verify, event, key, limiter=self._verifying)
        except signing.BadSignature as exc:
            log.warning("event %s refused: %s", event.id, exc)
            return signing.REFUSED
        if event.target_agent != self.info.id:
            log.warning("event %s refused: it is for agent %s", event.id, event.target_agent)
            return f"event for agent {event.target_agent!r}, not this one: refused"
        late = time.time() - event.expires_at
        if late > CLOCK_SKEW:
            # Signed, but old: someone who can write to the store could put back an event
            # that ran long ago (a delete, say); its TTL, which the signature covers, says no.
            log.warning("event %s refused: its TTL passed %.0f s ago", event.id, late)
            return f"its TTL passed {late:.0f} s ago: refused"
        return None


def batched(received: list[Receipt], statuses: list[Status]) -> list[Status | ReportBatch]:
    """The messages that carry ``received`` and then ``statuses``, in that order: ``reports``
    of a bounded size, a lone report as itself, and a large report (many resources' results,
    or a long message) always in a message of its own."""
    messages: list[Status | ReportBatch] = []
    run: list[Status] = []

    def flush(ids: list[Receipt]) -> None:
        if not ids and len(run) == 1:
            messages.append(run[0])
        elif ids or run:
            messages.append(ReportBatch(received=tuple(ids), statuses=tuple(run)))
        run.clear()

    chunks = [received[i : i + BATCH_RECEIVED] for i in range(0, len(received), BATCH_RECEIVED)]
    ids = chunks.pop() if chunks else []  # the last goes with the first reports
    for chunk in chunks:
        flush(chunk)
    for status in statuses:
        large = (
            len(status.resources or ()) > BATCH_RESOURCES
            or len(status.message) > BATCH_MESSAGE_CHARS
        )
        if large:
            flush(ids)
            ids = []
            messages.append(status)
        else:
            run.append(status)
            if len(run) == BATCH_STATUSES:
                flush(ids)
                ids = []
    flush(ids)
    return messages


def _describe(exc: BaseException) -> str:
    """What went wrong, in a line: the innermost error, not the nurseries around it (of
    several at once, e.g. the reader's and the writer's when the connection broke, the
    first)."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    if isinstance(exc, ConnectionRejected):
        body = (exc.body or b"").decode(errors="replace").strip()
        return f"refused with HTTP {exc.status_code}" + (f": {body}" if body else "")
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def agent_info(
    agent_id: str,
    cluster_name: str,
    labels: dict[str, str],
    *,
    provider: str = "",
    region: str = "",
) -> AgentInfo:
    return AgentInfo(
        id=agent_id,
        name=agent_id,
        cluster_name=cluster_name,
        provider=provider,
        region=region,
        version=__version__,
        labels=labels,
        capabilities=("k8s_resource", "apply", "delete"),
    )
