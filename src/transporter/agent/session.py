"""The agent's one connection to the control plane, carried out: dial, register, heartbeat,
read and write, around the rules of :mod:`.conversation`; and when the connection fails, dial
again (:mod:`.reconnect`), forever. Unacknowledged reports survive reconnects and are sent again.

The control plane may have several URLs (replicas on one store): the agent is connected to one
at a time, and moves to the next when its connection fails. Which replica it talks to changes
nothing of what runs: what the worker ran or is running is kept by event id (and written down
in the journal), so an event delivered again by another replica is answered, not run again,
and the reports one replica did not acknowledge are sent to the next.

A connection can die without ending (a half-open TCP connection: the far side or a middlebox
went away without a FIN): the agent pings, and a connection with no pong within the
``dead_after`` the control plane named in its welcome is dropped and dialled again (see
:meth:`Session._heartbeat` for how often, by protocol).

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

import trio

from transporter import __version__
from transporter.agent.conversation import Conversation, Rejected
from transporter.agent.dial import Channel, ChannelError, DeadConnection, connect
from transporter.agent.metrics import AgentMetrics
from transporter.agent.reconnect import Backoff, Outages
from transporter.agent.reports import Reports
from transporter.agent.worker import DEFAULT_CONCURRENCY, Ledger, Runner, Worker
from transporter.logs import about
from transporter.protocol import codec, signing
from transporter.protocol.messages import PINGS, Heartbeat, Status, Welcome
from transporter.protocol.model import AgentInfo, Event

__all__ = ["Backoff", "Session", "agent_info"]

log = logging.getLogger(__name__)

INLINE_VERIFY_BYTES = 256 * 1024
"""Events with fewer bytes of manifests are checked on the event loop; larger ones (hashing
some MB) in a worker thread, so that heartbeats and reports keep going."""
ANSWER_TIMEOUT = 30.0
"""Seconds the agent waits for a control plane that took its connection (TCP) to finish the
TLS handshake and the upgrade, and then for its welcome: one that took it is alive, and may be
letting thousands of agents back in after a restart (it waits its turns for up to 25 s). A
host that does not take the connection at all is given ``connect_timeout`` (10 s)."""
REPORT_GATHER = 0.01
"""Seconds a report of an event under way (received, a phase begun) waits for the next ones,
to go out in one message with them; a final report goes at once, with whatever waits. An
event's first phases then cost the control plane one message and one write, not three, and
its apply is not sent while the control plane is busy with them; a phase is shown 10 ms late
at most (its time is the agent's, as it began)."""
PING_AFTER = 0.75
"""The share of ``dead_after`` since the control plane's last answer after which the agent
pings it again (protocol 4)."""


class Silent(DeadConnection):
    """The control plane did not answer a ping in time: the connection is taken for dead."""


class Session:
    def __init__(
        self,
        info: AgentInfo,
        cp_urls: str | Sequence[str],
        runner: Runner,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        reports: Reports | None = None,
        backoff: Backoff | None = None,
        connect_timeout: float = 10.0,
        answer_timeout: float = ANSWER_TIMEOUT,
        rng: random.Random | None = None,
        ssl_context: ssl.SSLContext | None = None,
        signing_key: signing.Verifier | None = None,
        ledger: Ledger | None = None,
        metrics: AgentMetrics | None = None,
    ) -> None:
        """``cp_urls``: the control plane's agent channel, or its replicas' in the order to
        dial them. ``ssl_context``: for a ``wss://`` URL, the bundle's (its certificate, the control
        plane's CA). ``signing_key``: the control plane's, from the bundle; ``None`` runs
        events unchecked (``--insecure-plain-ws`` without a bundle only). ``ledger``: where
        what ran is written (:mod:`.journal`), so that nothing runs twice. ``metrics``: where
        connections and deliveries are counted."""
        self.info = info
        self.ssl_context = ssl_context
        self.signing_key = signing_key
        self._verifying = trio.CapacityLimiter(1)
        self.metrics = metrics or AgentMetrics()
        self.worker = Worker(
            runner, self, concurrency=concurrency, ledger=ledger, metrics=self.metrics
        )
        self.conversation = Conversation(info, reports)
        self.outages = Outages(cp_urls, backoff or Backoff(), rng or random.Random())  # noqa: S311
        self.connect_timeout = connect_timeout
        self.answer_timeout = answer_timeout
        self._outgoing_bell = trio.Event()
        self._send_by: float | None = None
        """When (trio's clock) what waits to be sent goes; ``None``: nothing waits."""
        self.connected = trio.Event()
        """Set while a registered connection is up (for tests and the demo)."""
        self.connections = 0

    @property
    def cp_url(self) -> str:
        """The URL connected to, while :attr:`connected`; else the one to dial next."""
        return self.outages.cp_url

    @property
    def reports(self) -> Reports:
        return self.conversation.reports

    # --- Sink, for the worker -----------------------------------------------------------------

    def received(self, event_id: str) -> None:
        self.conversation.received(event_id, time.time())
        self._send_soon()

    def unacknowledged(self, status: Status) -> bool:
        return self.reports.is_pending(status)

    def report(self, status: Status) -> None:
        self.conversation.report(status)
        if status.state.terminal:
            self._send_by = trio.current_time()
            self._outgoing_bell.set()
        else:
            self._send_soon()

    def _send_soon(self) -> None:
        if self._send_by is None:
            self._send_by = trio.current_time() + REPORT_GATHER
        self._outgoing_bell.set()

    # --- connection loop ----------------------------------------------------------------------

    async def run(self) -> None:
        """Execute events and keep connected, until cancelled."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self.worker.run)
            await self._connect_forever()

    async def _connect_forever(self) -> None:
        while True:
            reason = "connection closed"
            try:
                await self._connect_once()
            except* (ChannelError, codec.ProtocolError, Rejected) as group:
                reason = _describe(group.exceptions[0])
            except* Exception as group:
                # A bug of ours: say so loudly, then carry on like after any other outage.
                log.error("agent session failed", exc_info=group)
                reason = _describe(group.exceptions[0])
            line, delay = self.outages.down(time.monotonic(), reason)
            log.log(line.level, "%s", line.message)
            await trio.sleep(delay)

    async def _connect_once(self) -> None:
        url = self.cp_url
        async with connect(
            url,
            ssl_context=self.ssl_context if url.startswith("wss://") else None,
            max_message_size=codec.MAX_MESSAGE_BYTES,
            connect_timeout=self.connect_timeout,
            answer_timeout=self.answer_timeout,
        ) as channel:
            try:
                with trio.fail_after(self.answer_timeout):
                    await channel.send(codec.encode(self.conversation.hello()))
                    welcome = self.conversation.welcome(codec.decode(await channel.receive()))
            except trio.TooSlowError:
                raise Rejected(f"no welcome within {self.answer_timeout:g} s") from None
            await self._registered(channel, welcome)

    async def _registered(self, channel: Channel, welcome: Welcome) -> None:
        self.connections += 1
        line = self.outages.up(time.monotonic(), welcome.agent_id, welcome.heartbeat_interval)
        log.log(line.level, "%s", line.message)
        self.connected.set()
        self.metrics.connected(True)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._heartbeat, channel)
                nursery.start_soon(self._write, channel)
                nursery.start_soon(self._read, channel)
        finally:
            self.connected = trio.Event()
            self.metrics.connected(False)

    async def _heartbeat(self, channel: Channel) -> None:
        """A heartbeat every interval; raises :class:`Silent` when the dead time passed since
        the control plane last answered a ping (sending may block too, on a connection nobody
        reads). Both as the control plane said last (welcome, then ``pace``).

        Before protocol 4 each heartbeat is a ``heartbeat`` message and a ping. From 4 it is
        one WebSocket frame, an unsolicited pong (RFC 6455's one-way heartbeat), and a ping
        goes only once :data:`PING_AFTER` of ``dead_after`` passed since the last answer
        (leaving the rest for the answer): the control plane's cost per agent at rest is a
        frame read per interval and a pong sent every third interval (by default)."""
        answered = trio.current_time()  # the welcome was the last answer
        pings = self.conversation.protocol >= PINGS
        while True:
            interval, dead_after = self.conversation.pace
            started = trio.current_time()
            with trio.move_on_at(answered + dead_after) as waiting:
                if not pings:
                    await channel.send(codec.encode(Heartbeat(at=time.time())))
                if pings and started < answered + dead_after * PING_AFTER:
                    await channel.beat()
                else:
                    await channel.ping()
                    answered = trio.current_time()
            if waiting.cancelled_caught:
                raise Silent(f"no answer from the control plane for {dead_after:g} s")
            await trio.sleep_until(started + interval)

    async def _write(self, channel: Channel) -> None:
        """The one task that sends events' messages, in the order the conversation says: a
        final report at once, the others gathered (:data:`REPORT_GATHER`); what waited for
        this connection at once."""
        self._send_by = trio.current_time()
        while True:
            self._outgoing_bell = trio.Event()
            send_by = self._send_by
            if send_by is None:
                await self._outgoing_bell.wait()
            elif trio.current_time() < send_by:
                with trio.move_on_at(send_by):
                    await self._outgoing_bell.wait()  # a final report comes: at once
            else:
                self._send_by = None
                for message in self.conversation.outgoing():
                    await channel.send(codec.encode(message))

    async def _read(self, channel: Channel) -> None:
        while True:
            for event in self.conversation.incoming(await channel.receive()):
                await self._take(event)

    async def _take(self, event: Event) -> None:
        self.metrics.delivered()
        problem = await self._unverified(event) or self.conversation.refusal(event, time.time())
        if problem is None:
            await self.worker.offer(event)
        else:
            self.worker.refuse(event, problem)

    async def _unverified(self, event: Event) -> str | None:
        """Why ``event`` is not the control plane's as it signed it, or ``None``."""
        key = self.signing_key
        if key is None:
            return None
        try:
            if sum(len(text) for text in event.payload.manifests) < INLINE_VERIFY_BYTES:
                signing.verify(event, key)
            else:
                await trio.to_thread.run_sync(signing.verify, event, key, limiter=self._verifying)
        except signing.BadSignature as exc:
            log.warning("event %s refused: %s", event.id, exc, extra=about(event_id=event.id))
            return signing.REFUSED
        return None


def _describe(exc: BaseException) -> str:
    """What went wrong, in a line: the innermost error, not the nurseries around it (of
    several at once, e.g. the reader's and the writer's when the connection broke, the
    first). The channel's own errors say it all; others are named by their type."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    if isinstance(exc, ChannelError | Rejected):
        return str(exc)
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
