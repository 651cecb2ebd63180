"""Values pinned by the first control plane on a store (its keys' fingerprints): the first
value stays, whoever pins after it is told that one."""

from __future__ import annotations

import trio

from tests.bed.store_backends import Backend
from transporter.store import Store


async def test_the_first_value_pinned_stays(store: Store) -> None:
    assert await store.pin("ca", "aa" * 32) == "aa" * 32
    assert await store.pin("ca", "aa" * 32) == "aa" * 32
    assert await store.pin("ca", "bb" * 32) == "aa" * 32
    assert await store.pin("signing", "cc" * 32) == "cc" * 32  # names are apart


async def test_of_control_planes_pinning_at_once_one_wins_for_all(backend: Backend) -> None:
    async with backend.open() as one, backend.open() as two:
        answers: list[str] = []

        async def pin(store: Store, value: str) -> None:
            answers.append(await store.pin("ca", value))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(pin, one, "11" * 32)
            nursery.start_soon(pin, two, "22" * 32)
        assert answers[0] == answers[1] and answers[0] in ("11" * 32, "22" * 32)


async def test_a_pin_survives_closing_and_opening_again(backend: Backend) -> None:
    async with backend.open() as store:
        await store.pin("signing", "dd" * 32)
    async with backend.open() as store:
        assert await store.pin("signing", "ee" * 32) == "dd" * 32
