"""Giving memory back after connections came or went (:mod:`transporter.cp.trim`)."""

from __future__ import annotations

import platform

import pytest
import trio
import trio.testing

from transporter.cp.trim import Trim, in_a_thread, malloc_trim, trim_after_changes


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
async def test_this_c_library_has_malloc_trim_and_it_runs_in_a_thread() -> None:
    trim = malloc_trim()
    assert trim is not None
    assert trim() in (0, 1)  # 1: memory was given back
    await in_a_thread(trim)


async def test_a_trim_follows_changes_and_only_changes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    churn = 0
    trims: list[tuple[int, float]] = []
    start = trio.current_time()

    async def run(trim: Trim) -> None:  # on the event loop here: the mock clock stays exact
        trim()

    def trim() -> None:
        trims.append((churn, trio.current_time() - start))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            lambda: trim_after_changes(lambda: churn, trim=trim, interval=10, run=run)
        )
        await trio.sleep(35)  # nothing came or went
        assert trims == []
        churn = 3
        await trio.sleep(10)
        assert trims == [(3, 40)]  # at the next look
        await trio.sleep(1)
        churn = 5
        await trio.sleep(1)
        churn = 6  # two changes within one interval: one trim
        await trio.sleep(30)
        assert trims == [(3, 40), (6, 50)]
        nursery.cancel_scope.cancel()
