"""Turns for TLS handshakes (:class:`~transporter.cp.connections.Turns`): at most so many under
way, the others waiting in order for a bounded time, then refused."""

from __future__ import annotations

import trio
import trio.testing

from transporter.cp.connections import Turns


async def test_handshakes_past_the_running_ones_wait_their_turn_in_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    turns = Turns(running=2, wait=3.0)
    began: dict[int, float] = {}

    async def handshake(n: int) -> None:
        assert await turns.take()
        began[n] = trio.current_time()
        await trio.sleep(1.0)  # the handshake's work
        turns.give_back()

    async with trio.open_nursery() as nursery:
        for n in range(6):
            nursery.start_soon(handshake, n)
            await trio.testing.wait_all_tasks_blocked()
        assert turns.waiting == 4
    # two at a time, one second each, in the order they came (trio wakes those released
    # together in any order)
    assert began == {0: 0.0, 1: 0.0, 2: 1.0, 3: 1.0, 4: 2.0, 5: 2.0}


async def test_a_connection_that_waits_too_long_is_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    turns = Turns(running=1, wait=3.0)
    assert await turns.take()  # held past the wait of the next
    began = trio.current_time()
    assert not await turns.take()
    assert trio.current_time() - began == 3.0
    assert turns.waiting == 0
    turns.give_back()
    assert await turns.take()
