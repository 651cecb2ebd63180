"""What a connection's delivery reads from the store (cp/delivery.py): one outbox read per ring
of an event stored; an event that ends frees its slot without another read, unless the window
held events back, which are then read and sent (on a real SQLite store)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import cast

import trio
import trio.testing

from tests.bed import records as r
from tests.cp.test_delivery import connection
from tests.cp.test_delivery_first_look import Reads
from transporter.config.store_spec import StoreSpec
from transporter.cp.delivery import Delivery
from transporter.cp.live import LiveAgents
from transporter.cp.progress import Progress
from transporter.cp.watch import EventWatch
from transporter.cp.window import DeliveryWindow
from transporter.protocol.model import Event
from transporter.store import Store, open_store


class CountedReads(Reads):
    """:class:`Reads`, with an event set once ``until`` outbox reads have answered (a read
    runs in a worker thread, which trio's ``wait_all_tasks_blocked`` counts as blocked)."""

    def __init__(self, store: Store, until: int) -> None:
        super().__init__(store)
        self.until = until
        self.done = trio.Event()

    async def outbox(
        self, agent_id: str, *, after: int = 0, limit: int = 100
    ) -> list[tuple[int, Event]]:
        found = await super().outbox(agent_id, after=after, limit=limit)
        if len(self.outboxes) >= self.until:
            self.done.set()
        return found


async def test_an_event_that_ends_costs_no_second_read(tmp_path: Path) -> None:
    async with open_store(StoreSpec.sqlite_in(tmp_path)) as real:
        reads = Reads(real)
        store = cast(Store, reads)
        live = LiveAgents()
        progress = Progress(store, live, EventWatch())
        sent, receive = trio.open_memory_channel[str](10)
        link = connection("agent-a", sent)
        live.attach(link)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(progress.run)
            nursery.start_soon(Delivery(store, progress).run, link)
            await trio.testing.wait_all_tasks_blocked()
            for n in (1, 2):
                event = r.event(f"ev-{n}", "agent-a", created_at=time.time())
                await real.submit(event, r.accepted_audit(event))
                live.ring("agent-a")  # as intake does after the write
                with trio.fail_after(10):
                    assert await receive.receive() == f"ev-{n}"
                live.finished("agent-a", f"ev-{n}")  # as progress does when it ends
                await trio.testing.wait_all_tasks_blocked()
                assert not link.delivering  # nothing in flight: the task ended
            nursery.cancel_scope.cancel()
        assert reads.outboxes == ["agent-a", "agent-a"]  # one per event stored


async def test_events_held_back_by_a_full_window_go_when_a_slot_frees(tmp_path: Path) -> None:
    async with open_store(StoreSpec.sqlite_in(tmp_path)) as real:
        for n in (1, 2):
            event = r.event(f"ev-{n}", "agent-a", created_at=time.time() + n)
            await real.submit(event, r.accepted_audit(event))
        reads = CountedReads(real, until=3)
        store = cast(Store, reads)
        live = LiveAgents()
        progress = Progress(store, live, EventWatch())
        sent, receive = trio.open_memory_channel[str](10)
        link = connection("agent-a", sent)
        link.window = DeliveryWindow(1)
        live.attach(link)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(progress.run)
            nursery.start_soon(Delivery(store, progress).run, link)
            with trio.fail_after(10):
                assert await receive.receive() == "ev-1"
            await trio.testing.wait_all_tasks_blocked()
            assert receive.statistics().current_buffer_used == 0  # ev-2 waits for room
            live.finished("agent-a", "ev-1")
            with trio.fail_after(10):
                assert await receive.receive() == "ev-2"
            live.finished("agent-a", "ev-2")
            with trio.fail_after(10):
                await reads.done.wait()  # the read after ev-2's slot freed found nothing
            await trio.testing.wait_all_tasks_blocked()
            assert not link.delivering
            nursery.cancel_scope.cancel()
        # the first look found something; each read filled the window, so each freed slot
        # read again; the last read found nothing more
        assert reads.outboxes == ["agent-a"] * 3
