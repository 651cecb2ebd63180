"""Control planes and agents run in the test's own trio loop, on free ports, with real stores
and real API servers; each can be stopped and started again (a restart).

Secure by default, as the product is: the agent channel is TLS with client certificates, and
events are signed. Control planes use the test run's CA and signing key (:mod:`tests.bed.pki`,
given as files, as replicas share theirs), and each agent gets a bundle issued from them for its
id; ``pki=`` gives another set, ``insecure=True`` a plain ``ws://`` channel.

And what tests do with them: :func:`finish` follows an event to its end (as ``produce --wait``
does), :func:`submit_and_wait` does both, :func:`run_produce` runs the producer as users do,
and :func:`read` reads an object back from a cluster with the official client."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import trio
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from tests.bed import pki as test_pki
from tests.bed.kube import Cluster
from transporter.agent.bundle import Bundle, load_bundle
from transporter.agent.kube_runner import KubeRunner
from transporter.agent.main import DEFAULT_STATE_NAMESPACE, open_journal
from transporter.agent.policy import DEFAULT_POLICY, Policy
from transporter.agent.session import Backoff, Session, agent_info
from transporter.agent.worker import Reporter
from transporter.config.cp import ApiSecurity, ChannelSecurity, CpConfig
from transporter.config.store_spec import StoreSpec
from transporter.config.values import Address
from transporter.cp.channel import ChannelSettings
from transporter.cp.main import Bound, serve
from transporter.kube import KubeTarget
from transporter.produce.client import Client
from transporter.protocol.model import (
    AuditEntry,
    Event,
    EventRecord,
    EventState,
    Phase,
    ResourceStatus,
)
from transporter.security.ed25519 import PublicKey
from transporter.security.tokens import Role, TokenRecord, new_token
from transporter.store import open_store


class InstantRunner:
    """A runner that reports success at once, applying nothing: for tests of the channel."""

    async def __call__(self, event: Event, report: Reporter) -> None:
        report(EventState.COMPLETED, Phase.COMPLETED, "not applied (test)", ())


FAST_CHANNEL = ChannelSettings(heartbeat_interval=0.5, dead_heartbeats=20)
"""Heartbeats every 0.5 s; a connection silent for 10 s is dead (the control plane and the
agents share the test's one event loop, which a busy test can keep from answering a ping for
a few seconds)."""
FAST_BACKOFF = Backoff(first=0.05, cap=0.5)


async def create_token(
    spec: StoreSpec,
    name: str,
    role: Role = Role.ADMIN,
    agents: tuple[str, ...] = (),
) -> tuple[str, TokenRecord]:
    """A token in the store, as ``transporter token create`` makes it: its text and record."""
    now = time.time()
    text, record = new_token(name=name, role=role, agents=agents, now=now, created_by="test")
    async with open_store(spec) as store:
        audit = AuditEntry(at=now, action="token.created", actor="test", detail=record.describe())
        await store.create_token(record, audit)
    return text, record


@attrs.define
class ControlPlane:
    """``transporter cp`` in-process. ``start()`` again after ``stop()`` is a restart on the
    same store and the same ports (free ones, chosen by the first start).

    The API needs tokens (unless ``auth=False``): the first start creates an admin token,
    ``token``, which ``client`` sends; :meth:`new_token` makes others."""

    nursery: trio.Nursery
    data_dir: Path
    store: StoreSpec | None = None
    channel: ChannelSettings = FAST_CHANNEL
    auth: bool = True
    token: str | None = None
    """An admin token (made at the first start when ``auth``), or one given."""
    pki: test_pki.TestPki | None = attrs.field(factory=test_pki.shared)
    """The CA and event-signing key this control plane is given; ``None``: none, so that it
    makes its own in ``data_dir`` at the first start (the product's default)."""
    insecure: bool = False
    """Plain ``ws://`` (``--insecure-plain-ws``): no TLS, any agent id."""
    plain_http: bool = False
    """The API over plain HTTP (``--insecure-plain-http``); else HTTPS, as by default."""
    revocation_poll: float = 0.2
    """Seconds between looks for revoked certificates (2 s in the product)."""
    queue_claim_after: float = 30.0
    """``--queue-claim-after``: seconds before a queue entry left unsettled is claimed."""
    bound: Bound | None = None
    _scope: trio.CancelScope | None = None
    _stopped: trio.Event | None = None
    _ports: tuple[int, int] = (0, 0)

    async def start(self) -> Bound:
        settings = CpConfig(
            listen=Address("127.0.0.1", self._ports[0]),
            agent_listen=Address("127.0.0.1", self._ports[1]),
            data_dir=self.data_dir,
            store=self.store,
            insecure_no_auth=not self.auth,
            queue_claim_after=self.queue_claim_after,
            api=ApiSecurity(insecure_plain_http=self.plain_http),
            security=(
                ChannelSecurity(insecure_plain_ws=self.insecure)
                if self.pki is None
                else self.pki.security(insecure_plain_ws=self.insecure)
            ),
        )
        if self.auth and self.token is None:
            self.token, _ = await create_token(settings.effective_store, "harness")

        async def run(task_status: trio.TaskStatus[Bound]) -> None:
            stopped = trio.Event()
            self._stopped = stopped
            try:
                with trio.CancelScope() as scope:
                    self._scope = scope
                    await serve(
                        settings,
                        trio.Event(),
                        channel=self.channel,
                        revocation_poll=self.revocation_poll,
                        task_status=task_status,
                    )
            finally:
                stopped.set()

        bound: Bound = await self.nursery.start(run)
        api_port = int(bound.api_url.rsplit(":", 1)[1])
        self._ports = (api_port, bound.agent_addresses[0].port)
        self.bound = bound
        return bound

    async def stop(self) -> None:
        assert self._scope is not None and self._stopped is not None
        self._scope.cancel()
        await self._stopped.wait()
        self.bound = None

    @property
    def spec(self) -> StoreSpec:
        return self.store or StoreSpec.sqlite_in(self.data_dir)

    async def new_token(
        self, name: str, role: Role = Role.SUBMIT, agents: tuple[str, ...] = ("*",)
    ) -> str:
        """Another token in this control plane's store (``agents`` ignored for admin)."""
        text, _ = await create_token(self.spec, name, role, () if role is Role.ADMIN else agents)
        return text

    @property
    def client(self) -> Client:
        """A client with the admin ``token`` (none without ``auth``)."""
        return self.client_with(self.token)

    def client_with(self, token: str | None) -> Client:
        assert self.bound is not None
        return Client(self.bound.api_url, timeout=30, token=token, ca_file=self.ca_file)

    @property
    def ca_file(self) -> Path:
        """The CA of this control plane's HTTPS certificate (``produce --ca-cert``)."""
        return self.pki.ca_cert if self.pki is not None else self.data_dir / "ca.crt"

    @property
    def api_context(self) -> ssl.SSLContext:
        """A client's TLS context that trusts this control plane's API certificate."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    @property
    def headers(self) -> dict[str, str]:
        """What a raw HTTP request sends to be the admin ``token``."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    @property
    def agent_url(self) -> str:
        assert self.bound is not None
        return self.bound.agent_url

    @property
    def authority(self) -> test_pki.TestPki:
        """This control plane's CA and signing key (its own: after the first start)."""
        return self.pki or test_pki.TestPki.create(self.data_dir)

    def bundle(self, agent_id: str) -> Bundle:
        """A new bundle for ``agent_id`` from this control plane's CA."""
        return self.authority.bundle(agent_id)

    def credentials(self, agent_id: str) -> dict[str, Any]:
        """What a :class:`Session` needs to connect as ``agent_id`` and check its events:
        ``Session(info, cp.agent_url, runner, **cp.credentials(agent_id))``."""
        if self.insecure:  # no TLS; events are signed all the same
            return {"signing_key": PublicKey(self.authority.signer.public_raw)}
        bundle = self.bundle(agent_id)
        return {"ssl_context": bundle.ssl_context(), "signing_key": bundle.signing_key}


async def run_produce(
    cp: ControlPlane,
    *args: str,
    token: str | None = None,
    ca: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """``transporter produce ARGS`` as a user runs it against ``cp``: its admin token in
    ``TRANSPORTER_TOKEN`` (or ``token``; ``""``: none), trusting its CA (or ``ca``), with no
    other ``TRANSPORTER_*`` variable of ours; ``env`` adds to the environment."""
    assert cp.bound is not None
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TRANSPORTER_")}
    given = cp.token if token is None else token
    if given:
        environment["TRANSPORTER_TOKEN"] = given
    argv = [sys.executable, "-m", "transporter", "produce", *args, "--cp-url", cp.bound.api_url]
    return await trio.run_process(
        [*argv, "--ca-cert", str(ca or cp.ca_file)],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env={**environment, **(env or {})},
    )


@attrs.define
class Agent:
    """``transporter agent`` in-process, on a real cluster."""

    nursery: trio.Nursery
    agent_id: str
    cluster: Cluster
    labels: dict[str, str] = attrs.field(factory=dict)
    policy: Policy = DEFAULT_POLICY
    bundle: Bundle | Path | None = None
    """Its credentials; ``None``: a bundle for ``agent_id`` from the test run's CA (none on a
    ``ws://`` URL, where events then run unchecked)."""
    impersonate: bool = False
    """Act as each event's producer (``--impersonate producer``)."""
    state_namespace: str = DEFAULT_STATE_NAMESPACE
    """Where it keeps what it ran (``--state-namespace``)."""
    session: Session | None = None
    _scope: trio.CancelScope | None = None
    _stopped: trio.Event | None = None

    async def start(self, cp_url: str) -> Session:
        async def run(task_status: trio.TaskStatus[Session]) -> None:
            stopped = trio.Event()
            self._stopped = stopped
            try:
                with trio.CancelScope() as scope:
                    self._scope = scope
                    async with KubeTarget.connect(self.cluster.kubeconfig) as target:
                        info = agent_info(self.agent_id, self.cluster.name, self.labels)
                        journal = await open_journal(target, self.state_namespace, self.agent_id)
                        policy = attrs.evolve(self.policy, state_namespace=self.state_namespace)
                        runner = KubeRunner(target, policy, impersonate=self.impersonate)
                        bundle = self.credentials(cp_url)
                        session = Session(
                            info,
                            cp_url,
                            runner,
                            backoff=FAST_BACKOFF,
                            ssl_context=None if bundle is None else bundle.ssl_context(),
                            signing_key=None if bundle is None else bundle.signing_key,
                            ledger=journal,
                        )
                        task_status.started(session)
                        await session.run()
            finally:
                stopped.set()

        self.session = await self.nursery.start(run)
        return self.session

    def credentials(self, cp_url: str) -> Bundle | None:
        if isinstance(self.bundle, Path):
            return load_bundle(self.bundle)
        if self.bundle is None and cp_url.startswith("wss://"):
            self.bundle = test_pki.shared().bundle(self.agent_id)
        return self.bundle

    async def connected(self) -> None:
        assert self.session is not None
        await self.session.connected.wait()

    async def stop(self) -> None:
        assert self._scope is not None and self._stopped is not None
        self._scope.cancel()
        await self._stopped.wait()


async def read(cluster: Cluster, call: Callable[[k8s.ApiClient], Any]) -> Any:
    """Run a kubernetes client call against ``cluster`` in a thread; None when 404."""

    def run() -> Any:
        api = k8s_config.new_client_from_config(config_file=str(cluster.kubeconfig))  # type: ignore[no-untyped-call]
        with api:
            try:
                return call(api)
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise

    return await trio.to_thread.run_sync(run)


async def finish(cp: ControlPlane, event_id: str) -> EventRecord:
    """The event's record once it has ended, following it as ``produce --wait`` does."""
    with trio.fail_after(60):
        record = await cp.client.event(event_id)
        while not record.state.terminal:
            record = await cp.client.event(event_id, wait=10, since=len(record.timeline))
    return record


async def submit_and_wait(cp: ControlPlane, body: dict[str, Any]) -> EventRecord:
    submitted = await cp.client.submit(body)
    return await finish(cp, submitted.event_id)


def statuses(record: EventRecord) -> dict[tuple[str, str], ResourceStatus]:
    return {(r.kind, r.name): r.status for r in record.resources}
