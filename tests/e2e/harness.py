"""Control planes and agents run in the test's own trio loop, on free ports, with real stores
and real API servers; each can be stopped and started again (a restart)."""

from __future__ import annotations

from pathlib import Path

import attrs
import trio

from tests.bed.kube import Cluster
from transporter.agent.kube_runner import KubeRunner
from transporter.agent.policy import DEFAULT_POLICY, Policy
from transporter.agent.session import Backoff, Session, agent_info
from transporter.config import Address, CpConfig, StoreSpec
from transporter.cp.channel import ChannelSettings
from transporter.cp.main import Bound, serve
from transporter.kube import KubeTarget
from transporter.produce.client import Client

FAST_CHANNEL = ChannelSettings(heartbeat_interval=0.5, dead_heartbeats=20)
"""Heartbeats every 0.5 s; a connection silent for 10 s is dead (the control plane and the
agents share the test's one event loop, which a busy test can keep from answering a ping for
a few seconds)."""
FAST_BACKOFF = Backoff(first=0.05, cap=0.5)


@attrs.define
class ControlPlane:
    """``transporter cp`` in-process. ``start()`` again after ``stop()`` is a restart on the
    same store and the same ports (free ones, chosen by the first start)."""

    nursery: trio.Nursery
    data_dir: Path
    store: StoreSpec | None = None
    channel: ChannelSettings = FAST_CHANNEL
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
        )

        async def run(task_status: trio.TaskStatus[Bound]) -> None:
            stopped = trio.Event()
            self._stopped = stopped
            try:
                with trio.CancelScope() as scope:
                    self._scope = scope
                    await serve(
                        settings, trio.Event(), channel=self.channel, task_status=task_status
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
    def client(self) -> Client:
        assert self.bound is not None
        return Client(self.bound.api_url, timeout=30)

    @property
    def agent_url(self) -> str:
        assert self.bound is not None
        return self.bound.agent_url


@attrs.define
class Agent:
    """``transporter agent`` in-process, on a real cluster."""

    nursery: trio.Nursery
    agent_id: str
    cluster: Cluster
    labels: dict[str, str] = attrs.field(factory=dict)
    policy: Policy = DEFAULT_POLICY
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
                        runner = KubeRunner(target, self.policy)
                        session = Session(info, cp_url, runner, backoff=FAST_BACKOFF)
                        task_status.started(session)
                        await session.run()
            finally:
                stopped.set()

        self.session = await self.nursery.start(run)
        return self.session

    async def connected(self) -> None:
        assert self.session is not None
        await self.session.connected.wait()

    async def stop(self) -> None:
        assert self._scope is not None and self._stopped is not None
        self._scope.cancel()
        await self._stopped.wait()
