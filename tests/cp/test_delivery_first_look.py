"""A new connection's first look at its outbox, asked together with the others welcomed
meanwhile (cp/first_looks.py Looks): one read for many, only agents with something unfinished
read their outboxes, and an event stored after that read still reaches its agent; the safety
looks, asked together too, still catch an event whose ring was missed (on a real SQLite
store)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import pytest
import trio
import trio.testing

from tests.bed import records as r
from tests.cp.test_delivery import connection
from transporter.config.store_spec import StoreSpec
from transporter.cp.delivery import Delivery
from transporter.cp.first_looks import Looks
from transporter.cp.live import LiveAgents
from transporter.cp.progress import Progress
from transporter.cp.watch import EventWatch
from transporter.protocol.model import Event
from transporter.store import Store, StoreUnavailable, open_store


class Reads:
    """The real store, counting the reads of the first looks and of the outboxes; while
    ``hold`` is set, a first look's answer waits for ``release`` (once it has been read)."""

    def __init__(self, store: Store, *, hold: bool = False, expect: int = 0) -> None:
        self._store = store
        self.asked: list[list[str]] = []
        self.expect = expect
        self.all_asked = trio.Event()
        """Set once ``expect`` agents were asked about (and answered)."""
        self.outboxes: list[str] = []
        self.hold = hold
        self.answered = trio.Event()
        self.release = trio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def agents_with_unfinished(self, agent_ids: Sequence[str]) -> set[str]:
        found = await self._store.agents_with_unfinished(agent_ids)
        self.asked.append(list(agent_ids))
        if len({a for asked in self.asked for a in asked}) >= self.expect:
            self.all_asked.set()
        if self.hold:
            self.answered.set()
            await self.release.wait()
        return found

    async def outbox(
        self, agent_id: str, *, after: int = 0, limit: int = 100
    ) -> list[tuple[int, Event]]:
        self.outboxes.append(agent_id)
        return await self._store.outbox(agent_id, after=after, limit=limit)


async def test_connections_welcomed_together_cost_one_read(tmp_path: Path) -> None:
    async with open_store(StoreSpec.sqlite_in(tmp_path)) as real:
        event = r.event("ev-1", "agent-0007", created_at=time.time())
        await real.submit(event, r.accepted_audit(event))
        reads = Reads(real)
        store = cast(Store, reads)
        progress = Progress(store, LiveAgents(), EventWatch())
        delivery = Delivery(store, progress)
        sent, receive = trio.open_memory_channel[str](10)
        agents = [f"agent-{n:04d}" for n in range(300)]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(progress.run)
            for agent in agents:
                nursery.start_soon(delivery.run, connection(agent, sent))
            with trio.fail_after(10):
                assert await receive.receive() == "ev-1"
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
        # All that start together are asked about in one read (or two: the first to start
        # may be asked about alone, when its turn comes at once).
        assert len(reads.asked) <= 2
        assert sorted(a for asked in reads.asked for a in asked) == agents
        assert set(reads.outboxes) == {"agent-0007"}


async def test_an_event_stored_after_the_first_look_still_reaches_its_agent(
    tmp_path: Path,
) -> None:
    async with open_store(StoreSpec.sqlite_in(tmp_path)) as real:
        reads = Reads(real, hold=True)
        store = cast(Store, reads)
        live = LiveAgents()
        progress = Progress(store, live, EventWatch())
        sent, receive = trio.open_memory_channel[str](10)
        live.attach(connection("agent-a", sent))  # as agent_link does before the delivery
        async with trio.open_nursery() as nursery:
            nursery.start_soon(progress.run)
            nursery.start_soon(Delivery(store, progress).run, live.all()[0])
            with trio.fail_after(10):
                await reads.answered.wait()
            # The store said agent-a had nothing; its answer is not yet back with the delivery.
            event = r.event("ev-1", "agent-a", created_at=time.time())
            await real.submit(event, r.accepted_audit(event))
            live.ring("agent-a")  # as intake (or a replica's hint) does after the write
            reads.release.set()
            with trio.fail_after(10):
                assert await receive.receive() == "ev-1"
            nursery.cancel_scope.cancel()
        assert reads.asked == [["agent-a"]]


async def test_the_others_look_themselves_when_the_one_asking_for_them_is_gone(
    tmp_path: Path,
) -> None:
    async with open_store(StoreSpec.sqlite_in(tmp_path)) as real:
        event = r.event("ev-1", "agent-c", created_at=time.time())
        await real.submit(event, r.accepted_audit(event))
        reads = Reads(real, hold=True)
        looks = Looks(cast(Store, reads))
        answers: dict[str, bool] = {}
        gone = trio.CancelScope()

        async def look(agent: str, scope: trio.CancelScope | None = None) -> None:
            with scope or trio.CancelScope():
                answers[agent] = await looks.anything_for(agent)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(look, "agent-a")  # asks alone, held
            with trio.fail_after(10):
                await reads.answered.wait()
            nursery.start_soon(look, "agent-b", gone)  # asks next: waits for agent-a's answer
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(look, "agent-c")  # joins agent-b's question
            await trio.testing.wait_all_tasks_blocked()
            gone.cancel()
            await trio.testing.wait_all_tasks_blocked()
            reads.release.set()
        assert answers == {"agent-a": False, "agent-c": True}  # agent-b's task was cancelled
        assert reads.asked == [["agent-a"]]


async def test_a_store_that_fails_the_question_fails_the_first_looks(tmp_path: Path) -> None:
    async with open_store(StoreSpec.sqlite_in(tmp_path)) as store:
        await store.aclose()
        with pytest.raises(StoreUnavailable, match="closed"):
            await Looks(store).anything_for("agent-a")


async def test_safety_looks_are_asked_together_and_catch_a_missed_ring(tmp_path: Path) -> None:
    async with open_store(StoreSpec.sqlite_in(tmp_path)) as real:
        agents = [f"agent-{n:04d}" for n in range(50)]
        reads = Reads(real, expect=len(agents))
        store = cast(Store, reads)
        live = LiveAgents()
        progress = Progress(store, live, EventWatch())
        delivery = Delivery(store, progress, look=0.2, gather=0.1)
        sent, receive = trio.open_memory_channel[str](10)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(progress.run)
            nursery.start_soon(delivery.look_after, live)
            for agent in agents:
                live.attach(link := connection(agent, sent))
                nursery.start_soon(delivery.run, link)
            with trio.fail_after(10):
                await reads.all_asked.wait()
            await trio.testing.wait_all_tasks_blocked()
            # every connection is idle now: no delivery task runs for any
            assert not any(c.delivering for c in live.all())
            first = len(reads.asked)
            event = r.event("ev-1", "agent-0042", created_at=time.time())
            await real.submit(event, r.accepted_audit(event))  # and no ring: a hint missed
            with trio.fail_after(10):
                assert await receive.receive() == "ev-1"
            nursery.cancel_scope.cancel()
        assert set(reads.outboxes) == {"agent-0042"}
        assert max(len(asked) for asked in reads.asked[first:]) > 10


async def test_the_safety_look_sends_an_event_below_the_seq_the_connection_read(
    tmp_path: Path,
) -> None:
    """After a Redis failover the outbox's counter may be behind what a connection read (the
    old primary's last writes lost): an event stored then has a lower ``seq``, and no ring."""
    async with open_store(StoreSpec.sqlite_in(tmp_path)) as store:
        live = LiveAgents()
        progress = Progress(store, live, EventWatch())
        delivery = Delivery(store, progress, look=0.2, gather=0.1)
        sent, receive = trio.open_memory_channel[str](10)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(progress.run)
            nursery.start_soon(delivery.look_after, live)
            live.attach(link := connection("agent-a", sent))
            nursery.start_soon(delivery.run, link)
            await trio.testing.wait_all_tasks_blocked()
            link.sent_seq = 1_000  # read up to there from the primary that was lost
            event = r.event("ev-1", "agent-a", created_at=time.time())
            await store.submit(event, r.accepted_audit(event))  # seq 1, and no ring
            with trio.fail_after(10):
                assert await receive.receive() == "ev-1"
            nursery.cancel_scope.cancel()
