"""``transporter cp``: the control plane process."""

from __future__ import annotations

import logging
import sys
from functools import partial

import attrs
import trio
from quart_trio import QuartTrio

from transporter import runtime
from transporter.config.cp import CpConfig
from transporter.config.values import Address
from transporter.cp.agent_link import Parts
from transporter.cp.api import create_app
from transporter.cp.api.fast_submit import FastSubmit
from transporter.cp.api.services import Services
from transporter.cp.channel import PATH, AgentChannel, ChannelSettings
from transporter.cp.credentials import Credentials, KeyMismatch, pin_keys, prepare
from transporter.cp.delivery import Delivery
from transporter.cp.expiry import expire_forever
from transporter.cp.http import ApiServer, StartupError
from transporter.cp.intake import Intake
from transporter.cp.key_request import KeysUnread, PkiError
from transporter.cp.live import LiveAgents
from transporter.cp.metrics import CpMetrics
from transporter.cp.progress import Progress
from transporter.cp.queue.consumer import QueueConsumer, QueueSettings
from transporter.cp.replicas import ReplicaHints
from transporter.cp.revocations import POLL_INTERVAL, RevocationWatch
from transporter.cp.rollout.engine import Rollouts
from transporter.cp.sessions import Sessions
from transporter.cp.timed_store import timed_store
from transporter.cp.trim import trim_after_changes
from transporter.cp.watch import EventWatch
from transporter.security.ed25519 import Ed25519Unavailable
from transporter.store import Store, StoreError, open_store

log = logging.getLogger("transporter.cp")

EXIT_USAGE = 2
EXIT_START = 1
"""The control plane could not start: a port in use, a store that cannot be opened."""


@attrs.frozen
class Bound:
    """Where a started control plane listens (the real ports when port 0 was asked for)."""

    api_urls: list[str]
    agent_addresses: list[Address]
    agent_scheme: str = "wss"
    """``wss``, or ``ws`` with ``--insecure-plain-ws``."""

    @property
    def api_url(self) -> str:
        return self.api_urls[0]

    @property
    def agent_url(self) -> str:
        return self.agent_urls[0]

    @property
    def agent_urls(self) -> list[str]:
        return [f"{self.agent_scheme}://{address}{PATH}" for address in self.agent_addresses]


def channel_settings(settings: CpConfig) -> ChannelSettings:
    """The agent channel's settings from the command line's."""
    return ChannelSettings(
        replica_look=settings.replica_look,
        heartbeat_interval=settings.heartbeat_interval,
        heartbeat_budget=settings.heartbeat_budget,
    )


async def serve(
    settings: CpConfig,
    shutdown: trio.Event,
    *,
    channel: ChannelSettings | None = None,
    credentials: Credentials | None = None,
    revocation_poll: float | None = None,
    task_status: trio.TaskStatus[Bound] = trio.TASK_STATUS_IGNORED,
) -> None:
    """``credentials``: as :func:`~transporter.cp.credentials.prepare` gives them (read here when
    not given). ``revocation_poll``: seconds between looks for revoked certificates.
    ``channel``: the agent channel's settings (else the defaults, and ``settings``'s
    ``replica_look``)."""
    if credentials is None:
        credentials = await trio.to_thread.run_sync(prepare, settings)
    store_spec = settings.effective_store
    async with open_store(store_spec) as opened, trio.open_nursery() as nursery:
        await pin_keys(opened, credentials)
        channel = channel or channel_settings(settings)
        parts, services, hints = _assemble(
            opened,
            credentials,
            shared=store_spec.kind == "redis",
            ack_timeout=channel.ack_timeout,
            look=channel.replica_look,
        )
        store = parts.store  # each of its calls timed for the metrics
        revocations = None
        if credentials.tls is not None:
            revocations = RevocationWatch(store, interval=revocation_poll or POLL_INTERVAL)
            await revocations.load()
        agents = AgentChannel(parts, channel, tls=credentials.tls, revocations=revocations)
        # The agent channel and the expiry task stop at once on shutdown; the API (outer
        # nursery) finishes the requests it is answering first (hypercorn's graceful stop).
        async with trio.open_nursery() as background:
            agent_addresses: list[Address] = await background.start(
                agents.serve, settings.agent_listen
            )
            app = create_app(services, auth=not settings.insecure_no_auth)
            api = ApiServer(FastSubmit(app), settings.listen, tls=credentials.api_tls)
            services.metrics.watch(parts.live, api=api.gate, agent_channel=agents.handshakes)
            api_urls: list[str] = await nursery.start(api.serve, shutdown)
            # Other replicas' changes, at once (a store of one process has none).
            await background.start(hints.run, store)
            background.start_soon(parts.progress.run)
            background.start_soon(expire_forever, store, parts.progress)
            await background.start(services.rollouts.run)
            await _consume_queue(background, settings, store, app)  # on Redis: queue mode
            # Connections of either port (a flood of them too) leave memory to give back.
            background.start_soon(trim_after_changes, lambda: agents.churn + api.gate.churn)
            await _log_store(store, store_spec.display)
            scheme = "ws" if credentials.tls is None else "wss"
            bound = Bound(api_urls=api_urls, agent_addresses=agent_addresses, agent_scheme=scheme)
            await _log_auth(settings, store, api_urls)
            _log_listening(bound)
            task_status.started(bound)
            await shutdown.wait()
            background.cancel_scope.cancel()


async def _consume_queue(
    background: trio.Nursery, settings: CpConfig, store: Store, app: QuartTrio
) -> None:
    """On a Redis store, start this replica's member of the queue's consumer group, whose
    entries go through the API's own ``app`` (queue mode; the embedded store has no queue)."""
    if settings.effective_store.kind == "redis":
        queue = QueueSettings(claim_after=settings.queue_claim_after)
        await background.start(QueueConsumer(store, app, queue).run)


def _assemble(
    opened: Store, credentials: Credentials, *, shared: bool, ack_timeout: float, look: float
) -> tuple[Parts, Services, ReplicaHints]:
    """The control plane's parts, each for its own job, and what the API sees of them; all of
    them use the ``opened`` store through :func:`timed_store`, and count into one
    :class:`CpMetrics`."""
    metrics = CpMetrics()
    store = timed_store(opened, metrics)
    live = LiveAgents()
    watch = EventWatch()
    intake = Intake(store, credentials.signer, live, metrics=metrics)
    progress = Progress(store, live, watch, metrics=metrics)
    sessions = Sessions(store, live)
    parts = Parts(
        store=store,
        live=live,
        intake=intake,
        progress=progress,
        delivery=Delivery(store, progress, ack_timeout=ack_timeout, look=look, metrics=metrics),
        sessions=sessions,
    )
    rollouts = Rollouts(store, intake, progress)
    services = Services(
        store,
        intake,
        live,
        watch,
        shared_store=shared,
        replica_look=look,
        metrics=metrics,
        rollouts=rollouts,
    )
    return parts, services, ReplicaHints(live, watch, sessions)


def _log_listening(bound: Bound) -> None:
    for url in bound.agent_urls:
        log.info("agent channel listening on %s", url)
    for url in bound.api_urls:
        log.info("API listening on %s", url)


async def _log_store(store: Store, display: str) -> None:
    log.info("store: %s", display)
    for warning in await store.durability_warnings():
        log.warning("store: %s", warning)


async def _log_auth(settings: CpConfig, store: Store, api_urls: list[str]) -> None:
    """Say at start how the API is protected, loudly when it is not."""
    if settings.insecure_no_auth:
        log.warning(
            "API AUTHENTICATION IS OFF (--insecure-no-auth): whoever reaches %s may submit"
            " events to every agent and read every event, agent and the audit log, and events"
            " carry whatever created_by their producers claim. Use it on a closed test network"
            " only.",
            " and ".join(api_urls),
        )
        return
    if not any(not token.revoked for token in await store.list_tokens()):
        log.warning(
            "the API needs a bearer token and there is none yet: create one on this host with"
            " `transporter token create --name NAME --role admin %s`",
            settings.effective_store.flags,
        )
    else:
        log.info(
            "API: bearer tokens required (`transporter token list %s` shows them)",
            settings.effective_store.flags,
        )
    if settings.api.insecure_plain_http:
        log.warning(
            "API TLS IS OFF (--insecure-plain-http): the API on %s is plain HTTP, and bearer"
            " tokens cross the network readable%s. Use it behind a TLS-terminating proxy on"
            " this host, or on a closed test network, only.",
            settings.listen,
            "" if settings.listen.is_loopback else " to anyone on the way",
        )


def main(settings: CpConfig) -> int:
    """Exit codes: 0 stopped on a signal; 1 could not start (a port in use, the store cannot be
    opened, the child that reads the key files failed, no OpenSSL 3 to sign with); 2 bad
    settings (a CA, key or certificate file that cannot be used, keys that are not the
    store's). Every failure to start is one line on stderr."""
    runtime.configure_logging(debug=settings.debug, log_format=settings.log_format)
    try:  # before serving anything: a CA or key file that cannot be used is a usage error
        credentials = prepare(settings)
    except (PkiError, OSError) as exc:
        return _fail(str(exc), EXIT_USAGE)
    except (KeysUnread, Ed25519Unavailable) as exc:
        return _fail(str(exc), EXIT_START)
    try:
        return runtime.run(partial(serve, settings, credentials=credentials), long_lived=True)
    except BaseException as exc:
        failure = _first(exc)
        if isinstance(failure, KeyMismatch):
            return _fail(str(failure), EXIT_USAGE)
        if isinstance(failure, StartupError):
            return _fail(str(failure), EXIT_START)
        if isinstance(failure, StoreError):
            return _fail(f"the store {settings.effective_store.display}: {failure}", EXIT_START)
        raise


def _fail(message: str, code: int) -> int:
    print(f"transporter cp: error: {message}", file=sys.stderr)
    return code


def _first(exc: BaseException) -> BaseException:
    """The first failure inside nested exception groups (the nurseries around serve)."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc
