"""Giving memory back after connections came or went (:mod:`transporter.cp.trim`)."""

from __future__ import annotations

import platform

import pytest
import trio
import trio.testing

from transporter.cp.trim import malloc_trim, trim_after_changes


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_this_c_library_has_malloc_trim() -> None:
    trim = malloc_trim()
    assert trim is not None
    assert trim() in (0, 1)  # 1: memory was given back


async def test_a_trim_follows_changes_and_only_changes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    churn = 0
    trims: list[int] = []
    trimmed = trio.Event()

    def trim() -> None:  # in a worker thread, as malloc_trim would be
        trims.append(churn)
        trio.from_thread.run_sync(trimmed.set)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            lambda: trim_after_changes(lambda: churn, trim=trim, interval=10, timeout=1e9)
        )
        await trio.sleep(35)  # nothing came or went
        assert trims == []
        churn = 3
        await trimmed.wait()
        assert trims == [3]  # at the next look
        trimmed = trio.Event()
        await trio.sleep(1)
        churn = 5
        await trio.sleep(1)
        churn = 6  # two changes within one interval: one trim
        await trimmed.wait()
        assert trims == [3, 6]
        await trio.sleep(30)
        assert len(trims) == 2
        nursery.cancel_scope.cancel()
