"""Waiting for an event to change (:class:`transporter.cp.watch.EventWatch`)."""

from __future__ import annotations

import trio
import trio.testing

from tests.store import records as r
from transporter.cp.watch import EventWatch
from transporter.protocol.model import EventRecord


async def test_every_waiter_gets_the_record_written_and_then_nothing_is_held() -> None:
    watch = EventWatch()
    record = EventRecord(event=r.event("ev-1"), seq=1)
    got: list[EventRecord | None] = []

    async def waiter() -> None:
        got.append(await watch.wait("ev-1"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        watch.changed("ev-2", record)  # another event: nobody wakes
        await trio.testing.wait_all_tasks_blocked()
        assert got == []
        watch.changed("ev-1", record)
    assert got == [record, record]
    assert watch._waiting == {}


async def test_a_change_without_the_record_says_read_it_again() -> None:
    watch = EventWatch()
    got: list[EventRecord | None] = []

    async def waiter() -> None:
        got.append(await watch.wait("ev-1"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        watch.changed("ev-1")
    assert got == [None]


async def test_a_waiter_that_gives_up_leaves_nothing_behind(
    autojump_clock: trio.testing.MockClock,
) -> None:
    watch = EventWatch()
    with trio.move_on_after(30):
        await watch.wait("ev-1")
    assert watch._waiting == {}
