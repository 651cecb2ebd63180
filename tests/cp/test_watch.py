"""Waiting for an event to change (:class:`transporter.cp.watch.EventWatch`)."""

from __future__ import annotations

import trio
import trio.testing

from tests.bed import records as r
from transporter.cp.watch import EventWatch
from transporter.protocol.model import EventRecord


async def test_every_subscriber_gets_the_record_written_and_then_nothing_is_held() -> None:
    watch = EventWatch()
    record = EventRecord(event=r.event("ev-1"), seq=1)
    got: list[EventRecord | None] = []

    async def waiter() -> None:
        with watch.watching("ev-1") as subscription:
            got.append(await subscription.next())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        watch.changed("ev-2", record)  # another event: nobody wakes
        await trio.testing.wait_all_tasks_blocked()
        assert got == []
        watch.changed("ev-1", record)
    assert got == [record, record]
    assert watch._subscribed == {}


async def test_a_change_before_the_wait_is_not_lost() -> None:
    """The race a request that reads, then waits, would lose: the change lands in between."""
    watch = EventWatch()
    record = EventRecord(event=r.event("ev-1"), seq=2)
    with watch.watching("ev-1") as subscription:
        watch.changed("ev-1", record)  # while the request still looks at what it read
        with trio.fail_after(1):
            assert await subscription.next() == record
        watch.changed("ev-1")  # and again, after it was woken once
        with trio.fail_after(1):
            assert await subscription.next() is None


async def test_a_subscriber_that_gives_up_leaves_nothing_behind(
    autojump_clock: trio.testing.MockClock,
) -> None:
    watch = EventWatch()
    with watch.watching("ev-1") as subscription, trio.move_on_after(30):
        await subscription.next()
    assert watch._subscribed == {}
