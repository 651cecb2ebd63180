"""The API's keep-alive timer alone (cp/http.py ``_IdleTimer``), on trio's mock clock: a
connection idle past its deadline is closed, each answer moves the deadline, a request under way
is never closed, a stop closes idle connections at once and busy ones after their answer, and
the timer is one task per connection, not one per request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import trio
import trio.testing
from hypercorn.trio.worker_context import EventWrapper

from transporter.cp.http import _IdleTimer

TIMEOUT = 5.0


@attrs.define
class Bench:
    """A timer, its connection's task group (hypercorn's, as far as the timer uses it), the
    server's stop, and when (trio's clock) the timer closed the connection."""

    timer: _IdleTimer
    group: object
    terminated: EventWrapper
    closed: list[float]

    async def idle(self) -> None:
        await self.timer.restart(self.group, None)

    async def busy(self) -> None:
        await self.timer.stop()


@attrs.define
class _Group:
    _nursery: trio.Nursery


@asynccontextmanager
async def bench() -> AsyncIterator[Bench]:
    terminated = EventWrapper()
    closed: list[float] = []

    async def close() -> None:
        closed.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        made = Bench(_IdleTimer(TIMEOUT, terminated, close), _Group(nursery), terminated, closed)
        yield made
        made.timer.end()  # as the connection's reading ends


async def test_an_idle_connection_is_closed_at_its_deadline_and_answers_move_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with bench() as b:
        start = trio.current_time()
        await b.idle()
        await trio.sleep(3)
        await b.busy()  # a request
        await trio.sleep(20)  # longer than the keep-alive time: never cut
        assert b.closed == []
        await b.idle()  # answered
        await trio.sleep(TIMEOUT + 1)
        assert b.closed == [start + 23 + TIMEOUT]


async def test_a_deadline_moved_before_the_timer_saw_it_pass_does_not_close(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with bench() as b:
        await b.idle()
        await trio.testing.wait_all_tasks_blocked()
        assert b.timer._scope is not None
        b.timer._scope.cancel()  # as its deadline would, the timer not yet woken
        moved = trio.current_time()
        await b.idle()  # an answer in the same turn moves the deadline
        await trio.sleep(TIMEOUT + 1)
        assert b.closed == [moved + TIMEOUT]


async def test_a_stop_closes_an_idle_connection_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with bench() as b:
        await b.idle()
        await trio.sleep(1)
        stopped = trio.current_time()
        await b.terminated.set()
        await trio.sleep(1)
        assert b.closed == [stopped]


async def test_a_stop_closes_a_busy_connection_once_it_has_answered(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with bench() as b:
        await b.idle()
        await b.busy()
        await b.terminated.set()
        await trio.sleep(30)
        assert b.closed == []
        answered = trio.current_time()
        await b.idle()
        await trio.sleep(1)
        assert b.closed == [answered]


async def test_an_end_before_the_timer_ran_closes_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with bench() as b:
        await b.idle()
        b.timer.end()  # its task not started yet
        await trio.sleep(TIMEOUT * 2)
        assert b.closed == []
        await b.idle()  # never armed again
        await trio.sleep(TIMEOUT * 2)
        assert b.closed == []


class Spawns(trio.abc.Instrument):
    def __init__(self) -> None:
        self.count = 0

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        self.count += 1


async def test_requests_start_no_task(autojump_clock: trio.testing.MockClock) -> None:
    """hypercorn's own timer started a task for every request (and cancelled the last)."""
    spawns = Spawns()
    async with bench() as b:
        await b.idle()
        await trio.testing.wait_all_tasks_blocked()
        trio.lowlevel.add_instrument(spawns)
        try:
            for _ in range(50):
                await b.busy()
                await trio.sleep(0.1)
                await b.idle()
                await trio.sleep(0.1)
        finally:
            trio.lowlevel.remove_instrument(spawns)
        assert spawns.count == 0
