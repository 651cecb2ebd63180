"""Faults of the link between an agent and the control plane, through the fault proxy, while a
stream of events is submitted and applied: the agent gets back, and nothing is lost.

Each test: an agent dials the control plane through :class:`FaultProxy`; events flow (each a new
ConfigMap in the test's own namespace); a fault is switched on, noticed, lifted; the agent
reconnects; more events flow; then every accepted event has ended ``completed`` and the cluster
holds exactly the ConfigMaps asked for. For a half-open link (no FIN, no RST ever arrives) both
ends must notice by themselves within the dead-connection time (``ChannelSettings.dead_after``),
through heartbeats (control plane) and pings (agent).

Times measured are printed (``pytest -s``); the bounds asserted are generous: the control plane,
the agent and the proxy share the test's one event loop on a busy machine.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio
from kubernetes import client as k8s

from tests.bed.faultproxy import FaultProxy
from tests.bed.harness import (
    FAST_CHANNEL,
    Agent,
    ControlPlane,
    finish,
    read,
    statuses,
    submit_and_wait,
)
from tests.bed.kube import Cluster
from tests.bed.manifests import configmap_yaml, event_body, namespace_yaml, unique
from transporter.agent.session import Session
from transporter.protocol.model import AgentStatus, EventState

INTERVAL = FAST_CHANNEL.heartbeat_interval
DEAD = FAST_CHANNEL.dead_after
"""Seconds of silence after which either end takes the connection for dead."""
NOTICE = DEAD + 5.0
"""Bound for an end to notice a dead connection: the dead time, and room for a busy loop."""
CLOSED = NOTICE + 7.0
"""Bound for an end to close its socket, or the agent to dial again, after a dead connection:
the closing handshake a dead peer never answers is given up to 5 s."""
RECONNECT = 15.0
"""Bound for the agent to be registered again once the fault is lifted: an attempt still
waiting for an answer gives up after its connect timeout (10 s), then backoff (< 0.5 s)."""
PACE = 0.2
"""Seconds between two events of the stream."""
POLL = 0.05
"""Seconds between looks at states nothing signals (a session's flags, the API's records)."""


class Stream:
    """Submits events for one agent, each creating a new ConfigMap in ``namespace``, one every
    :data:`PACE` seconds until :meth:`stop`; remembers every accepted one."""

    def __init__(self, cp: ControlPlane, agent_id: str, namespace: str) -> None:
        self.cp = cp
        self.agent_id = agent_id
        self.namespace = namespace
        self.accepted: dict[str, str] = {}
        """Event id → the name of the ConfigMap it creates, in the order of submission."""
        self._stopped = trio.Event()
        self._more = trio.Event()

    async def run(self) -> None:
        client = self.cp.client
        while not self._stopped.is_set():
            name = unique("cm")
            body = event_body(self.agent_id, configmap_yaml(name, self.namespace, n="1"))
            submitted = await client.submit(body)
            self.accepted[submitted.event_id] = name
            self._more.set()
            self._more = trio.Event()
            with trio.move_on_after(PACE):
                await self._stopped.wait()

    async def until_accepted(self, count: int) -> None:
        while len(self.accepted) < count:
            await self._more.wait()

    async def more(self, count: int) -> list[str]:
        """The ids of the next ``count`` events accepted."""
        start = len(self.accepted)
        await self.until_accepted(start + count)
        return list(self.accepted)[start : start + count]

    def stop(self) -> None:
        self._stopped.set()


@pytest.fixture
async def cp(nursery: trio.Nursery, tmp_path: Path) -> ControlPlane:
    plane = ControlPlane(nursery, tmp_path / "cp")
    await plane.start()
    return plane


@pytest.fixture
async def proxy(nursery: trio.Nursery, cp: ControlPlane) -> FaultProxy:
    """The fault proxy in front of the control plane's agent channel."""
    faulty = FaultProxy.to_url(cp.agent_url)
    await nursery.start(faulty.serve)
    return faulty


@pytest.fixture
async def agent(
    nursery: trio.Nursery, cluster: Cluster, cp: ControlPlane, proxy: FaultProxy
) -> Agent:
    """An agent connected to the control plane through the proxy."""
    one = Agent(nursery, unique("link"), cluster)
    await one.start(proxy.url(cp.agent_url))
    with trio.fail_after(30):
        await one.connected()
    return one


def session_of(agent: Agent) -> Session:
    assert agent.session is not None
    return agent.session


async def until(check: Callable[[], bool]) -> None:
    """Until ``check()`` holds: for a state nothing signals. Bound it with a cancel scope."""
    while not check():  # noqa: ASYNC110 - no event to wait on: nothing signals these states
        await trio.sleep(POLL)


async def until_status(cp: ControlPlane, agent_id: str, status: AgentStatus) -> None:
    """Until the control plane's record of the agent (``GET /agents/{id}``) says ``status``."""
    client = cp.client
    while (await client.agent(agent_id)).status is not status:  # noqa: ASYNC110 - as above
        await trio.sleep(POLL)


class Timer:
    """Seconds from a start to each of several things, each within its own bound."""

    def __init__(self) -> None:
        self.start = trio.current_time()
        self.times: dict[str, float] = {}

    async def mark(self, what: str, bound: float, happened: Callable[[], Awaitable[None]]) -> None:
        with trio.move_on_after(bound - (trio.current_time() - self.start)):
            await happened()
            self.times[what] = trio.current_time() - self.start
            return
        pytest.fail(f"{what}: not within {bound:g} s (so far: {self.report()})")

    def report(self) -> str:
        return ", ".join(f"{what} {seconds:.2f} s" for what, seconds in self.times.items())


Fault = Callable[[Stream], Awaitable[None]]


async def ride_out(cp: ControlPlane, agent: Agent, cluster: Cluster, fault: Fault) -> None:
    """Events flow, ``fault`` happens (and is lifted) meanwhile, events flow again; then
    nothing is lost."""
    namespace = unique("link")
    created = await submit_and_wait(cp, event_body(agent.agent_id, namespace_yaml(namespace)))
    assert created.state is EventState.COMPLETED, created.message
    stream = Stream(cp, agent.agent_id, namespace)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stream.run)
        # Traffic flows through the proxy before the fault...
        for event_id in await stream.more(3):
            assert (await finish(cp, event_id)).state is EventState.COMPLETED
        await fault(stream)
        # ...and after it, on the new connection.
        for event_id in await stream.more(5):
            assert (await finish(cp, event_id)).state is EventState.COMPLETED
        stream.stop()
    with trio.fail_after(RECONNECT):
        await until_status(cp, agent.agent_id, AgentStatus.CONNECTED)
    for event_id, name in stream.accepted.items():
        record = await finish(cp, event_id)
        assert record.state is EventState.COMPLETED, (event_id, record.message)
        assert set(statuses(record)) == {("ConfigMap", name)}

    def names(api: k8s.ApiClient) -> set[str]:
        listed = k8s.CoreV1Api(api).list_namespaced_config_map(namespace)
        return {str(item.metadata and item.metadata.name) for item in listed.items}

    assert await read(cluster, names) == set(stream.accepted.values())


async def reconnected(agent: Agent, connections: int, lifted: float) -> float:
    """Seconds from ``lifted`` until the agent registered again (over ``connections``)."""
    session = session_of(agent)
    with trio.fail_after(RECONNECT):
        await until(lambda: session.connections > connections)
    return trio.current_time() - lifted


async def test_a_slow_link_is_not_a_dead_one(
    cp: ControlPlane, agent: Agent, cluster: Cluster, proxy: FaultProxy
) -> None:
    session = session_of(agent)
    connections = session.connections

    async def slow(stream: Stream) -> None:
        proxy.delay(0.2)  # 0.4 s a round trip: slow, far from the dead time
        for event_id in await stream.more(5):
            assert (await finish(cp, event_id)).state is EventState.COMPLETED
        proxy.pass_through()

    await ride_out(cp, agent, cluster, slow)
    assert session.connections == connections
    assert proxy.counts.accepted == 1


async def test_a_link_slower_than_the_dead_time_is_dropped_and_dialled_again(
    cp: ControlPlane, agent: Agent, cluster: Cluster, proxy: FaultProxy
) -> None:
    session = session_of(agent)

    async def slower(stream: Stream) -> None:
        connections = session.connections
        timer = Timer()
        proxy.delay(DEAD + 2)  # every answer comes too late
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                timer.mark,
                "agent noticed",
                NOTICE,
                lambda: until(lambda: not session.connected.is_set()),
            )
            nursery.start_soon(
                timer.mark,
                "control plane noticed",
                NOTICE,
                lambda: until_status(cp, agent.agent_id, AgentStatus.DISCONNECTED),
            )
        lifted = trio.current_time()
        proxy.pass_through()
        again = await reconnected(agent, connections, lifted)
        print(f"\nlink slower than {DEAD:g} s: {timer.report()}; reconnected {again:.2f} s after")

    await ride_out(cp, agent, cluster, slower)


async def test_a_half_open_link_is_noticed_by_both_ends(
    cp: ControlPlane, agent: Agent, cluster: Cluster, proxy: FaultProxy
) -> None:
    session = session_of(agent)

    async def half_open(stream: Stream) -> None:
        connections = session.connections
        counts = proxy.counts
        accepted, client_ends, upstream_ends = (
            counts.accepted,
            counts.client_ends,
            counts.upstream_ends,
        )
        timer = Timer()
        proxy.drop()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                timer.mark,
                "agent noticed",
                NOTICE,
                lambda: until(lambda: not session.connected.is_set()),
            )
            nursery.start_soon(
                timer.mark,
                "agent closed its socket",
                CLOSED,
                lambda: proxy.wait_until(lambda c: c.client_ends > client_ends),
            )
            nursery.start_soon(
                timer.mark,
                "agent dialled again",
                CLOSED,
                lambda: proxy.wait_until(lambda c: c.accepted > accepted),
            )
            nursery.start_soon(
                timer.mark,
                "control plane noticed",
                NOTICE,
                lambda: until_status(cp, agent.agent_id, AgentStatus.DISCONNECTED),
            )
            nursery.start_soon(
                timer.mark,
                "control plane closed its socket",
                CLOSED,
                lambda: proxy.wait_until(lambda c: c.upstream_ends > upstream_ends),
            )
        # Through a dead link, nobody got through: the new dial waits, unanswered.
        assert session.connections == connections
        lifted = trio.current_time()
        proxy.pass_through()
        again = await reconnected(agent, connections, lifted)
        print(
            f"\nhalf-open, dead after {DEAD:g} s: {timer.report()}; reconnected {again:.2f} s after"
        )

    await ride_out(cp, agent, cluster, half_open)


@pytest.mark.parametrize("rst", [False, True], ids=["fin", "rst"])
async def test_a_cut_link_is_dialled_again_at_once(
    cp: ControlPlane, agent: Agent, cluster: Cluster, proxy: FaultProxy, rst: bool
) -> None:
    session = session_of(agent)

    async def cut(stream: Stream) -> None:
        connections = session.connections
        start = trio.current_time()
        await proxy.cut(rst=rst)
        again = await reconnected(agent, connections, start)
        print(f"\ncut with {'RST' if rst else 'FIN'}: reconnected after {again:.2f} s")
        assert again < 5.0

    await ride_out(cp, agent, cluster, cut)


async def test_a_refusing_link_is_dialled_until_it_lets_through(
    cp: ControlPlane, agent: Agent, cluster: Cluster, proxy: FaultProxy
) -> None:
    session = session_of(agent)

    async def refuse(stream: Stream) -> None:
        connections = session.connections
        proxy.refuse()
        await proxy.cut()  # the control plane is gone: its connection ends, dials are refused
        with trio.fail_after(RECONNECT):
            await proxy.wait_until(lambda c: c.refused >= 5)
        assert session.connections == connections
        assert not session.connected.is_set()
        lifted = trio.current_time()
        proxy.pass_through()
        again = await reconnected(agent, connections, lifted)
        print(f"\nrefused {proxy.counts.refused} dials; reconnected {again:.2f} s after")
        assert again < 5.0

    await ride_out(cp, agent, cluster, refuse)
