"""What the Sentinels' answers after a write's WAIT mean (a majority answering, one primary
named, no failover flagged), and the rounds of questions shared by the writes: each write is
answered by a round that began after it asked, never by one already under way."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from transporter.store.redis.named_primary import Named, Rounds, verdict


def master(port: int, flags: str = "master") -> dict[str, Any]:
    return {"ip": "127.0.0.1", "port": port, "flags": flags}


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        ([master(1), master(1), master(1)], Named("127.0.0.1:1")),
        ([master(1), master(1)], Named("127.0.0.1:1")),  # one Sentinel down
        ([master(1)], Named(None, "1 of 3 Sentinels answered (2 needed)")),
        (
            [master(1), master(2), master(1)],
            Named(None, "the Sentinels name different primaries (127.0.0.1:1, 127.0.0.1:2)"),
        ),
        (
            [master(1, "master,failover_in_progress,force_failover"), master(1), master(1)],
            Named(
                None,
                "a Sentinel is failing 127.0.0.1:1 over"
                " (master,failover_in_progress,force_failover)",
            ),
        ),
        (
            [master(1, "master,s_down,o_down"), master(1), master(1)],
            Named(None, "a Sentinel is failing 127.0.0.1:1 over (master,s_down,o_down)"),
        ),
        ([master(1, "master,s_down"), master(1), master(1)], Named("127.0.0.1:1")),
    ],
)
def test_the_verdict_of_the_sentinels_answers(
    answers: list[dict[str, Any]], expected: Named
) -> None:
    assert verdict(answers, 3) == expected


async def test_a_round_under_way_answers_only_those_who_asked_before_it() -> None:
    began: list[trio.Event] = []
    release: list[trio.Event] = []

    async def ask() -> Named:
        began.append(trio.Event())
        release.append(trio.Event())
        began[-1].set()
        await release[-1].wait()
        return Named(f"round {len(release)}")

    rounds = Rounds(ask)
    got: dict[str, Named] = {}

    async def call(name: str) -> None:
        got[name] = await rounds.after_now()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(call, "first")
        await trio.testing.wait_all_tasks_blocked()
        assert len(began) == 1
        nursery.start_soon(call, "second")  # round 1 is under way: too early for it
        nursery.start_soon(call, "third")
        await trio.testing.wait_all_tasks_blocked()
        release[0].set()
        await trio.testing.wait_all_tasks_blocked()
        assert got == {"first": Named("round 1")}
        assert len(began) == 2  # one round for both that waited
        release[1].set()
    assert got == {"first": Named("round 1"), "second": Named("round 2"), "third": Named("round 2")}
    assert len(began) == 2


async def test_a_cancelled_round_leaves_the_next_caller_to_ask() -> None:
    asked = 0
    hold = trio.Event()

    async def ask() -> Named:
        nonlocal asked
        asked += 1
        if asked == 1:
            await hold.wait()
        return Named(f"round {asked}")

    rounds = Rounds(ask)
    async with trio.open_nursery() as nursery:
        cancelled = trio.CancelScope()

        async def gives_up() -> None:
            with cancelled:
                await rounds.after_now()

        nursery.start_soon(gives_up)
        await trio.testing.wait_all_tasks_blocked()
        waiting: list[Named] = []

        async def waits() -> None:
            waiting.append(await rounds.after_now())

        nursery.start_soon(waits)
        await trio.testing.wait_all_tasks_blocked()
        cancelled.cancel()
    assert waiting == [Named("round 2")]
