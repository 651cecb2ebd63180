"""The control plane's parts that rollouts move, in the test's own loop: a real SQLite store,
the real intake (signing), progress writer, delivery, expiry and agent channel (plain
``ws://``), and the rollout engine; agents are real sessions whose runner the test scripts
(no Kubernetes: what they do is not under test here, what the control plane does is)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import trio

from tests.bed import pki as test_pki
from tests.bed.harness import FAST_BACKOFF, FAST_CHANNEL
from tests.cp.rollout import fleet
from transporter.agent.session import Session, agent_info
from transporter.agent.worker import Reporter
from transporter.config.store_spec import StoreSpec
from transporter.config.values import Address
from transporter.cp.agent_link import Parts
from transporter.cp.channel import AgentChannel
from transporter.cp.delivery import Delivery
from transporter.cp.expiry import expire_forever
from transporter.cp.intake import Intake
from transporter.cp.live import LiveAgents
from transporter.cp.progress import Progress
from transporter.cp.rollout.engine import Rollouts
from transporter.cp.sessions import Sessions
from transporter.cp.watch import EventWatch
from transporter.protocol.model import (
    Event,
    EventState,
    Phase,
    ResourceResult,
)
from transporter.protocol.rollout import RolloutRecord, RolloutSpec
from transporter.security.ed25519 import PublicKey
from transporter.store import Store, open_store

TIMEOUT = 30.0


def everyone(agent: str) -> bool:
    return True


@attrs.define
class Script:
    """What the agents do with each event: complete it at once, unless the test said to fail
    it (``fail``), or to hold it until released (``hold``); what they ran, in order."""

    fail: set[str] = attrs.field(factory=set)
    hold: set[str] = attrs.field(factory=set)
    results: dict[str, tuple[ResourceResult, ...]] = attrs.field(factory=dict)
    ran: list[Event] = attrs.field(factory=list)
    running: int = 0
    most: int = 0
    """The most events running at once."""
    release: trio.Event = attrs.field(factory=trio.Event)
    changed: trio.Event = attrs.field(factory=trio.Event)

    def ring(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    async def __call__(self, event: Event, report: Reporter) -> None:
        agent = event.target_agent
        self.ran.append(event)
        self.running += 1
        self.most = max(self.most, self.running)
        report(EventState.IN_PROGRESS, Phase.APPLYING, "working")
        self.ring()
        try:
            if agent in self.hold:
                await self.release.wait()
        finally:
            self.running -= 1
        results = self.results.get(agent, ())
        if agent in self.fail:
            report(EventState.FAILED, Phase.FAILED, "failed (test)", results)
        else:
            report(EventState.COMPLETED, Phase.COMPLETED, "done (test)", results)
        self.ring()

    def agents_ran(self) -> list[str]:
        return [event.target_agent for event in self.ran]


@attrs.define
class Plane:
    nursery: trio.Nursery
    store: Store
    rollouts: Rollouts
    url: str
    port: int
    scope: trio.CancelScope
    script: Script
    agents: dict[str, trio.CancelScope] = attrs.field(factory=dict)

    async def agent(self, agent_id: str, labels: dict[str, str] | None = None) -> Session:
        """An agent connected (registered) to this plane."""
        key = PublicKey(test_pki.shared().signer.public_raw)
        info = agent_info(agent_id, "test", labels or {})
        session = Session(info, self.url, self.script, backoff=FAST_BACKOFF, signing_key=key)
        scope = trio.CancelScope()
        self.agents[agent_id] = scope

        async def run() -> None:
            with scope:
                await session.run()

        self.nursery.start_soon(run)
        with trio.fail_after(TIMEOUT):
            await session.connected.wait()
        return session

    async def until(
        self, rollout_id: str, done: Callable[[RolloutRecord], bool], *, also: Plane | None = None
    ) -> RolloutRecord:
        """The rollout's record once ``done`` holds for it, woken by each change this plane
        (or ``also``, another replica) stores."""
        planes = [self] if also is None else [self, also]
        with trio.fail_after(TIMEOUT):
            while True:
                changes = [plane.rollouts.next_change() for plane in planes]
                record = await self.rollouts.get(rollout_id)
                assert record is not None
                if done(record):
                    return record
                await first(changes)

    async def final(self, rollout_id: str, *, also: Plane | None = None) -> RolloutRecord:
        return await self.until(rollout_id, lambda record: record.state.final, also=also)

    async def create(self, **fields: object) -> RolloutRecord:
        record, created = await self.rollouts.create(spec(**fields), may_target=everyone)  # type: ignore[arg-type]
        assert created
        return record

    async def stop(self) -> None:
        self.scope.cancel()


async def first(events: list[trio.Event]) -> None:
    """Until one of ``events`` is set."""
    async with trio.open_nursery() as nursery:

        async def wait(event: trio.Event) -> None:
            await event.wait()
            nursery.cancel_scope.cancel()

        for event in events:
            nursery.start_soon(wait, event)


def spec(rollout_id: str = "r1", **given: Any) -> RolloutSpec:
    """:func:`tests.cp.rollout.fleet.spec`, created now: the engine's clock is the real one."""
    return fleet.spec(rollout_id, created_at=time.time(), **given)


async def start_plane(
    nursery: trio.Nursery,
    folder: Path,
    *,
    script: Script | None = None,
    port: int = 0,
    clock: Callable[[], float] = time.time,
    sweep_interval: float = 10.0,
    reconcile_interval: float = 0.5,
    store: StoreSpec | None = None,
) -> Plane:
    """A plane on the SQLite store in ``folder`` (another start on the same folder and port
    is a restart), or on ``store``, running until :meth:`Plane.stop`."""
    script = script or Script()
    spec = store

    async def run(task_status: trio.TaskStatus[Plane]) -> None:
        with trio.CancelScope() as scope:
            async with open_store(spec or StoreSpec.sqlite_in(folder)) as store:
                live, watch = LiveAgents(), EventWatch()
                intake = Intake(store, test_pki.shared().signer, live)
                progress = Progress(store, live, watch)
                parts = Parts(
                    store, live, intake, progress, Delivery(store, progress), Sessions(store, live)
                )
                rollouts = Rollouts(
                    store,
                    intake,
                    progress,
                    reconcile_interval=reconcile_interval,
                    sweep_interval=sweep_interval,
                    clock=clock,
                )
                channel = AgentChannel(parts, FAST_CHANNEL, tls=None)
                async with trio.open_nursery() as inner:
                    inner.start_soon(progress.run)
                    inner.start_soon(expire_forever, store, progress)
                    await inner.start(rollouts.run)
                    bound = await inner.start(channel.serve, Address("127.0.0.1", port))
                    url = f"ws://127.0.0.1:{bound[0].port}/ws"
                    task_status.started(
                        Plane(nursery, store, rollouts, url, bound[0].port, scope, script)
                    )

    plane: Plane = await nursery.start(run)
    return plane
