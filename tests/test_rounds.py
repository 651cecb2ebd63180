"""Rounds of questions shared by their callers (transporter/rounds.py): each caller is answered
by a round that began after it asked, never by one already under way; a round cancelled leaves
the next caller to ask; a failed round is its caller's error, and the others ask again."""

from __future__ import annotations

import trio
import trio.testing

from transporter.rounds import Rounds


async def test_a_round_under_way_answers_only_those_who_asked_before_it() -> None:
    began: list[trio.Event] = []
    release: list[trio.Event] = []

    async def ask() -> str:
        began.append(trio.Event())
        release.append(trio.Event())
        began[-1].set()
        await release[-1].wait()
        return str(f"round {len(release)}")

    rounds = Rounds[str](ask)
    got: dict[str, str] = {}

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
        assert got == {"first": "round 1"}
        assert len(began) == 2  # one round for both that waited
        release[1].set()
    assert got == {"first": "round 1", "second": "round 2", "third": "round 2"}
    assert len(began) == 2


async def test_a_cancelled_round_leaves_the_next_caller_to_ask() -> None:
    asked = 0
    hold = trio.Event()

    async def ask() -> str:
        nonlocal asked
        asked += 1
        if asked == 1:
            await hold.wait()
        return str(f"round {asked}")

    rounds = Rounds[str](ask)
    async with trio.open_nursery() as nursery:
        cancelled = trio.CancelScope()

        async def gives_up() -> None:
            with cancelled:
                await rounds.after_now()

        nursery.start_soon(gives_up)
        await trio.testing.wait_all_tasks_blocked()
        waiting: list[str] = []

        async def waits() -> None:
            waiting.append(await rounds.after_now())

        nursery.start_soon(waits)
        await trio.testing.wait_all_tasks_blocked()
        cancelled.cancel()
    assert waiting == ["round 2"]


async def test_a_failed_round_is_its_callers_error_and_the_others_ask_again() -> None:
    asked = 0
    hold = trio.Event()

    async def ask() -> str:
        nonlocal asked
        asked += 1
        if asked == 1:
            await hold.wait()
            raise OSError("the store is away")
        return f"round {asked}"

    rounds = Rounds[str](ask)
    got: list[object] = []

    async def call() -> None:
        try:
            got.append(await rounds.after_now())
        except OSError as exc:
            got.append(str(exc))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(call)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(call)
        await trio.testing.wait_all_tasks_blocked()
        hold.set()
    assert sorted(map(str, got)) == ["round 2", "the store is away"]
    assert rounds.waiting == 0
