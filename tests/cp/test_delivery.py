"""How the control plane packs deliveries into messages: in order, in bounded batches, and a
large event in a message of its own; and that a cancel that won is never undone by a delivery
that had read the event just before (on a real SQLite store)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, cast

import trio

from tests.bed import records as r
from transporter.config.store_spec import StoreSpec
from transporter.cp.delivery import BATCH_BYTES, BATCH_EVENTS, Delivery, batches
from transporter.cp.live import Connection, LiveAgents
from transporter.cp.progress import Progress
from transporter.cp.watch import EventWatch
from transporter.protocol.messages import BATCHES
from transporter.protocol.model import AgentInfo, Event, EventState
from transporter.protocol.status import StatusUpdate
from transporter.store import Store, open_store


def test_deliveries_go_in_bounded_batches_in_order() -> None:
    assert batches([]) == []
    made = batches([100] * (BATCH_EVENTS * 2 + 1))
    assert [i for batch in made for i in batch] == list(range(BATCH_EVENTS * 2 + 1))
    assert [len(batch) for batch in made] == [BATCH_EVENTS, BATCH_EVENTS, 1]
    half = BATCH_BYTES // 2
    assert batches([half, half, 1, BATCH_BYTES * 4, 1]) == [[0, 1], [2], [3], [4]]


class OutboxGate:
    """The real store, whose first outbox read that finds something holds its answer until the
    test releases it: the moment between a delivery's read and its ``assigned`` write."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.read = trio.Event()
        self.release = trio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def outbox(
        self, agent_id: str, *, after: int = 0, limit: int = 100
    ) -> list[tuple[int, Event]]:
        found = await self._store.outbox(agent_id, after=after, limit=limit)
        if found and not self.release.is_set():
            self.read.set()
            await self.release.wait()
        return found


def connection(agent_id: str, sent: trio.MemorySendChannel[str]) -> Connection:
    async def send(text: str) -> None:
        for event_id in sent_ids(json.loads(text)):
            await sent.send(event_id)

    now = time.time()
    return Connection(
        info=AgentInfo(agent_id),
        connected_since=now,
        sender=send,
        cancel_scope=trio.CancelScope(),
        last_heard=now,
        protocol=BATCHES,
    )


def sent_ids(message: dict[str, Any]) -> list[str]:
    events = message["events"] if message["type"] == "deliveries" else [message["event"]]
    return [event["id"] for event in events]


async def test_an_event_cancelled_after_the_outbox_was_read_is_never_sent(tmp_path: Path) -> None:
    async with open_store(StoreSpec.sqlite_in(tmp_path)) as real:
        now = time.time()
        first = r.event("ev-1", "agent-a", created_at=now)
        await real.submit(first, r.accepted_audit(first))
        store = cast(Store, OutboxGate(real))
        progress = Progress(store, LiveAgents(), EventWatch())
        sent, receive = trio.open_memory_channel[str](10)
        link = connection("agent-a", sent)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(progress.run)
            nursery.start_soon(Delivery(store, progress).run, link)
            with trio.fail_after(10):
                await store.read.wait()  # type: ignore[attr-defined]
            # The delivery has read ev-1 from the outbox and not yet written it assigned.
            cancel = StatusUpdate(at=now, state=EventState.CANCELLED, message="cancelled by test")
            cancelled = await progress.update("ev-1", "agent-a", cancel)
            assert cancelled is not None and cancelled.state is EventState.CANCELLED
            store.release.set()  # type: ignore[attr-defined]
            second = r.event("ev-2", "agent-a", created_at=now)
            await real.submit(second, r.accepted_audit(second))
            link.ring()
            with trio.fail_after(10):
                assert await receive.receive() == "ev-2"  # the first sent: ev-1 never is
            nursery.cancel_scope.cancel()
        assert "ev-1" not in link.window
        record = await real.get_event("ev-1")
        assert record is not None and record.state is EventState.CANCELLED
        audits = (await real.list_audit(limit=100)).items
        assert [a.action for a in audits if a.event_id == "ev-1"] == [
            "event.cancelled",
            "event.accepted",
        ]


async def test_an_event_in_progress_is_sent_again_on_a_new_connection(tmp_path: Path) -> None:
    async with open_store(StoreSpec.sqlite_in(tmp_path)) as store:
        now = time.time()
        event = r.event("ev-1", "agent-a", created_at=now)
        await store.submit(event, r.accepted_audit(event))
        for state in (EventState.ASSIGNED, EventState.IN_PROGRESS):
            assert await store.update_event("ev-1", StatusUpdate(at=now, state=state)) is not None
        progress = Progress(store, LiveAgents(), EventWatch())
        sent, receive = trio.open_memory_channel[str](10)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(progress.run)
            nursery.start_soon(Delivery(store, progress).run, connection("agent-a", sent))
            with trio.fail_after(10):
                assert await receive.receive() == "ev-1"
            nursery.cancel_scope.cancel()
        record = await store.get_event("ev-1")
        assert record is not None and record.state is EventState.IN_PROGRESS
        audits = (await store.list_audit(limit=100)).items
        assert next(a.action for a in audits if a.event_id == "ev-1") == "event.delivered"
