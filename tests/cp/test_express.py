"""An event accepted for an idle connection of its agent is stored sent and sent at once, with
no read of the outbox and no second write (cp/intake.py, live.py ``claim``, delivery.py
``express``); anything that could put it out of order sends it the usual way, after what came
before it. On the real stores (SQLite, Redis)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, cast

import attrs
import pytest
import trio
import trio.testing

from tests.bed import pki as test_pki
from tests.bed import records as r
from tests.bed.store_backends import Backend
from tests.cp.test_delivery import connection
from tests.cp.test_delivery_first_look import Reads
from transporter.cp import delivery
from transporter.cp.delivery import Delivery
from transporter.cp.intake import EXPRESS_BYTES, Intake
from transporter.cp.live import Connection, LiveAgents
from transporter.cp.progress import Progress
from transporter.cp.watch import EventWatch
from transporter.protocol.model import AuditEntry, Event, EventState
from transporter.store import Store
from transporter.store.base import Sending


class HeldSubmits(Reads):
    """:class:`Reads`, whose next ``submit_many`` waits for ``release`` once ``hold`` is set
    (before it writes anything); ``looked`` is set when a first look was answered (a read on
    a worker thread or on the network counts as blocked for ``wait_all_tasks_blocked``)."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.hold = False
        self.holding = trio.Event()
        self.release = trio.Event()
        self.looked = trio.Event()
        self.writer: trio.lowlevel.Task | None = None
        """The task whose write was held."""

    async def agents_with_unfinished(self, agent_ids: Sequence[str]) -> set[str]:
        found = await super().agents_with_unfinished(agent_ids)
        self.looked.set()
        return found

    async def submit_many(
        self,
        items: Sequence[tuple[Event, AuditEntry]],
        *,
        sending: Sequence[Sending | None] = (),
        tokens: Sequence[str | None] = (),
    ) -> list[Any]:
        if self.hold:
            self.hold = False
            self.writer = trio.lowlevel.current_task()
            self.holding.set()
            await self.release.wait()
        return await self._store.submit_many(items, sending=sending, tokens=tokens)


@attrs.define
class Plane:
    """The control plane's delivery path around one real store."""

    real: Store
    store: HeldSubmits
    live: LiveAgents
    intake: Intake
    delivery: Delivery
    nursery: trio.Nursery
    runs: dict[str, trio.CancelScope] = attrs.field(factory=dict)

    async def serve(self, agent_id: str) -> tuple[Connection, trio.MemoryReceiveChannel[str]]:
        """A connection of ``agent_id``, served, once its first look was answered; what is
        sent on it comes out of the channel."""
        sent, receive = trio.open_memory_channel[str](100)
        link = connection(agent_id, sent)
        self.live.attach(link)
        self.store.looked = trio.Event()
        self.runs[agent_id] = scope = trio.CancelScope()
        self.nursery.start_soon(self._run, link, scope)
        with trio.fail_after(10):
            await self.store.looked.wait()
        await trio.testing.wait_all_tasks_blocked()
        return link, receive

    async def _run(self, link: Connection, scope: trio.CancelScope) -> None:
        with scope:
            await self.delivery.run(link)

    def end(self, link: Connection) -> None:
        """``link``'s delivery ends, as when its connection ends (its nursery closes)."""
        self.runs[link.agent_id].cancel()
        self.live.detach(link)

    async def reconnected(self, link: Connection) -> list[str]:
        """``link`` ends and its agent comes back: what its new connection is sent first."""
        self.delivery.stop(link)
        self.live.detach(link)
        _, new = await self.serve(link.agent_id)
        return await received(new, 1)

    async def accept(
        self, event_id: str, agent_id: str = "agent-a", manifests: tuple[str, ...] | None = None
    ) -> EventState:
        made = r.event(event_id, agent_id, created_at=time.time())
        if manifests is not None:
            made = attrs.evolve(made, payload=attrs.evolve(made.payload, manifests=manifests))
        record, created = await self.intake.accept(made)
        assert created
        return record.state

    async def store_elsewhere(self, event_id: str, agent_id: str = "agent-a") -> None:
        """An event stored by another replica, whose hint has not come yet."""
        event = r.event(event_id, agent_id, created_at=time.time())
        await self.real.submit(event, r.accepted_audit(event))


@asynccontextmanager
async def plane(backend: Backend) -> AsyncIterator[Plane]:
    async with backend.open() as real:
        store = HeldSubmits(real)
        live = LiveAgents()
        progress = Progress(cast(Store, store), live, EventWatch())
        intake = Intake(cast(Store, store), test_pki.shared().signer, live)
        delivery = Delivery(cast(Store, store), progress)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(progress.run)
            yield Plane(real, store, live, intake, delivery, nursery)
            nursery.cancel_scope.cancel()


async def received(channel: trio.MemoryReceiveChannel[str], count: int) -> list[str]:
    with trio.fail_after(10):
        return [await channel.receive() for _ in range(count)]


async def test_an_event_for_an_idle_connection_is_sent_without_a_read(backend: Backend) -> None:
    async with plane(backend) as p:
        link, channel = await p.serve("agent-a")
        p.store.outboxes.clear()
        for n in (1, 2):
            assert await p.accept(f"ev-{n}") is EventState.ASSIGNED
            assert await received(channel, 1) == [f"ev-{n}"]
            p.live.finished("agent-a", f"ev-{n}")  # as progress does when it ends
            await trio.testing.wait_all_tasks_blocked()
            assert not link.delivering
        assert p.store.outboxes == []
        entries = [(e.action, e.event_id) for e in await p.real.audit_after(0)]
        assert entries == [
            ("event.accepted", "ev-1"),
            ("event.delivered", "ev-1"),
            ("event.accepted", "ev-2"),
            ("event.delivered", "ev-2"),
        ]
        # A ring now (a hint from another replica) reads after ev-2: nothing is sent again.
        link.ring()
        await trio.testing.wait_all_tasks_blocked()
        assert p.store.outboxes == ["agent-a"]
        assert channel.statistics().current_buffer_used == 0


async def test_an_event_behind_one_not_read_yet_is_sent_after_it(backend: Backend) -> None:
    async with plane(backend) as p:
        _, channel = await p.serve("agent-a")
        await p.store_elsewhere("ev-1")
        assert await p.accept("ev-2") is EventState.QUEUED
        assert await received(channel, 2) == ["ev-1", "ev-2"]


async def test_an_event_stored_while_one_is_being_accepted_keeps_its_place(
    backend: Backend,
) -> None:
    async with plane(backend) as p:
        link, channel = await p.serve("agent-a")
        p.store.hold = True
        states: list[EventState] = []

        async def accept() -> None:
            states.append(await p.accept("ev-2"))

        p.nursery.start_soon(accept)
        with trio.fail_after(10):
            await p.store.holding.wait()
        assert link.delivering  # claimed for ev-2: a ring now starts no delivery
        await p.store_elsewhere("ev-1")  # stored first, ev-2's write not begun
        link.ring()
        await trio.testing.wait_all_tasks_blocked()
        assert channel.statistics().current_buffer_used == 0
        p.store.release.set()
        assert await received(channel, 2) == ["ev-1", "ev-2"]
        assert states == [EventState.QUEUED]


async def test_events_accepted_together_are_sent_in_their_order(backend: Backend) -> None:
    async with plane(backend) as p:
        _, channel = await p.serve("agent-a")
        p.store.hold = True
        p.nursery.start_soon(p.accept, "ev-0")
        with trio.fail_after(10):
            await p.store.holding.wait()
        ids = [f"ev-{n}" for n in range(1, 8)]
        for event_id in ids:  # they wait for ev-0's write, then go in one together
            p.nursery.start_soon(p.accept, event_id)
        await trio.testing.wait_all_tasks_blocked()
        p.store.release.set()
        got = await received(channel, 8)
        seqs = {}
        for event_id in ["ev-0", *ids]:
            record = await p.real.get_event(event_id)
            assert record is not None
            seqs[event_id] = record.seq
        assert got == sorted(got, key=seqs.__getitem__)  # in the order stored
        assert sorted(got) == sorted(["ev-0", *ids])


async def test_an_event_accepted_as_its_connection_ends_goes_to_the_next(
    backend: Backend,
) -> None:
    async with plane(backend) as p:
        link, old = await p.serve("agent-a")
        p.store.hold = True
        answered = trio.Event()

        async def accept() -> None:
            await p.accept("ev-1")
            answered.set()

        p.nursery.start_soon(accept)
        with trio.fail_after(10):
            await p.store.holding.wait()
        p.delivery.stop(link)  # the connection ends during the write
        p.live.detach(link)
        p.store.release.set()
        with trio.fail_after(10):
            await answered.wait()
        record = await p.real.get_event("ev-1")
        assert record is not None
        # stored sent, never sent: back in the queue (it can be cancelled while its agent is away)
        assert (record.state, record.message) == (EventState.QUEUED, "agent went away")
        assert old.statistics().current_buffer_used == 0
        _, new = await p.serve("agent-a")  # the agent comes back
        assert await received(new, 1) == ["ev-1"]


async def test_a_connection_with_events_in_flight_reads_as_before(backend: Backend) -> None:
    async with plane(backend) as p:
        link, channel = await p.serve("agent-a")
        assert await p.accept("ev-1") is EventState.ASSIGNED
        assert await received(channel, 1) == ["ev-1"]
        assert link.delivering  # ev-1 in flight
        assert await p.accept("ev-2") is EventState.QUEUED
        assert await received(channel, 1) == ["ev-2"]


async def test_an_event_whose_request_is_cancelled_during_its_write_is_still_sent(
    backend: Backend,
) -> None:
    async with plane(backend) as p:
        _, channel = await p.serve("agent-a")
        p.store.hold = True
        async with trio.open_nursery() as client:
            client.start_soon(p.accept, "ev-1")
            with trio.fail_after(10):
                await p.store.holding.wait()
            client.cancel_scope.cancel()  # the client hung up; the write goes on (shielded)
            p.store.release.set()
        assert await received(channel, 1) == ["ev-1"]
        record = await p.real.get_event("ev-1")
        assert record is not None and record.state is EventState.ASSIGNED


async def test_a_connection_that_takes_nothing_is_closed_and_its_agent_gets_it_next(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(delivery, "EXPRESS_SEND", 0.2)
    async with plane(backend) as p:
        link, _ = await p.serve("agent-a")
        stuck = trio.Event()

        async def never(text: str) -> None:  # a peer that reads nothing: the send never ends
            await stuck.wait()

        link.sender = never
        with trio.fail_after(10):
            assert await p.accept("ev-1") is EventState.ASSIGNED  # answered all the same
        assert link.cancel_scope.cancel_called
        assert await p.reconnected(link) == ["ev-1"]


async def test_a_connection_that_broke_is_closed_and_its_agent_gets_it_next(
    backend: Backend,
) -> None:
    async with plane(backend) as p:
        link, _ = await p.serve("agent-a")

        async def broken(text: str) -> None:
            raise trio.BrokenResourceError("the peer went away")

        link.sender = broken
        assert await p.accept("ev-1") is EventState.ASSIGNED
        assert link.cancel_scope.cancel_called
        assert await p.reconnected(link) == ["ev-1"]


async def test_a_connection_that_ends_during_the_send_leaves_the_request_answered(
    backend: Backend,
) -> None:
    async with plane(backend) as p:
        link, _ = await p.serve("agent-a")
        sending, go_on, answered = trio.Event(), trio.Event(), trio.Event()

        async def slow(text: str) -> None:
            sending.set()
            await go_on.wait()

        link.sender = slow
        states: list[EventState] = []

        async def accept() -> None:
            states.append(await p.accept("ev-1"))
            answered.set()

        p.nursery.start_soon(accept)
        with trio.fail_after(10):
            await sending.wait()
        p.end(link)  # its delivery's nursery closes while the request's task still sends
        await trio.testing.wait_all_tasks_blocked()
        assert link.work is None
        go_on.set()
        with trio.fail_after(10):
            await answered.wait()
        assert states == [EventState.ASSIGNED]
        assert "ev-1" in link.window  # its end puts it back in the queue (roster.left)


async def test_a_request_cancelled_while_another_writes_its_event_rings_after(
    backend: Backend,
) -> None:
    """Two requests' events in one write (``Together``): the one whose task does not write
    is cancelled meanwhile; its event, stored sent, goes out once the write is done."""
    async with plane(backend) as p:
        channels = {agent: (await p.serve(agent))[1] for agent in ("agent-a", "agent-b")}
        p.store.hold = True
        p.nursery.start_soon(p.accept, "ev-0", "agent-z")  # its write holds the next ones back
        with trio.fail_after(10):
            await p.store.holding.wait()
        scopes: dict[str, trio.CancelScope] = {}
        tasks: dict[str, trio.lowlevel.Task] = {}

        async def accept(event_id: str, agent_id: str) -> None:
            with trio.CancelScope() as scopes[agent_id]:
                tasks[agent_id] = trio.lowlevel.current_task()
                await p.accept(event_id, agent_id)

        p.nursery.start_soon(accept, "ev-1", "agent-a")
        p.nursery.start_soon(accept, "ev-2", "agent-b")
        await trio.testing.wait_all_tasks_blocked()
        p.store.holding, p.store.hold = trio.Event(), True
        p.store.release.set()  # ev-0 written; one of the two writes both (held)
        p.store.release = trio.Event()
        with trio.fail_after(10):
            await p.store.holding.wait()
        (waiting,) = [agent for agent, task in tasks.items() if task is not p.store.writer]
        scopes[waiting].cancel()  # its client hung up while the other writes its event
        await trio.testing.wait_all_tasks_blocked()
        p.store.release.set()
        event_id = "ev-1" if waiting == "agent-a" else "ev-2"
        assert await received(channels[waiting], 1) == [event_id]


async def test_a_large_event_goes_the_usual_way(backend: Backend) -> None:
    """Its request is not held for its transfer (nor its connection closed past the bound)."""
    async with plane(backend) as p:
        _, channel = await p.serve("agent-a")
        large = ("kind: ConfigMap\n" + "#" * EXPRESS_BYTES,)
        assert await p.accept("ev-1", manifests=large) is EventState.QUEUED
        assert await received(channel, 1) == ["ev-1"]
        assert p.store.outboxes == ["agent-a"]  # read from the outbox, as any queued event
