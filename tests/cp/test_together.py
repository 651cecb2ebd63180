"""Single events accepted at the same time are stored in one write (cp/together.py, through
cp/intake.py): alone at once, together while a write is under way, each caller answered with
its own result; a conflict or an error is each caller's own; a caller that gives up, or whose
request is cancelled while it writes for the others, takes nobody's answer with it. On the
real stores (SQLite, Redis)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, cast

import pytest
import trio
import trio.testing

from tests.bed import pki as test_pki
from tests.bed import records as r
from tests.bed.store_backends import Backend
from transporter.cp.intake import Intake
from transporter.cp.live import LiveAgents
from transporter.cp.together import Together
from transporter.protocol.model import AuditEntry, Event
from transporter.store import Store
from transporter.store.base import EventConflict


class Writes:
    """A write that records its batches and waits for ``release`` before answering."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.release = trio.Event()
        self.fail: Exception | None = None

    async def __call__(self, items: Sequence[str]) -> list[str]:
        self.batches.append(list(items))
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        return [item.upper() for item in items]


async def test_items_handed_in_during_a_write_go_together_in_the_next() -> None:
    writes = Writes()
    together = Together(writes, most=2)
    answers: dict[str, str] = {}

    async def write(item: str) -> None:
        answers[item] = await together.write(item)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(write, "a")
        await trio.testing.wait_all_tasks_blocked()
        for item in "bcd":
            nursery.start_soon(write, item)
        await trio.testing.wait_all_tasks_blocked()
        assert writes.batches == [["a"]]  # alone, at once
        writes.release.set()
    # at most two together, in the order they came (trio starts tasks in no set order)
    assert writes.batches[0] == ["a"] and [len(batch) for batch in writes.batches] == [1, 2, 1]
    assert sorted(item for batch in writes.batches for item in batch) == ["a", "b", "c", "d"]
    assert answers == {"a": "A", "b": "B", "c": "C", "d": "D"}


async def test_an_error_is_each_callers_and_a_cancelled_writer_leaves_the_write_to_end() -> None:
    writes = Writes()
    writes.fail = ValueError("the disk is full")
    together = Together(writes, most=8)
    got: dict[str, object] = {}
    writer = trio.CancelScope()

    async def write(item: str, scope: trio.CancelScope | None = None) -> None:
        with scope or trio.CancelScope():
            try:
                got[item] = await together.write(item)
            except ValueError as exc:
                got[item] = str(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(write, "a", writer)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(write, "b")
        await trio.testing.wait_all_tasks_blocked()
        writer.cancel()  # its client hung up: the write it does for "a" goes on, shielded
        await trio.testing.wait_all_tasks_blocked()
        writes.release.set()
    assert writes.batches == [["a"], ["b"]]
    assert got == {"a": "the disk is full", "b": "the disk is full"}


async def test_a_caller_that_gives_up_before_its_write_is_not_written() -> None:
    writes = Writes()
    together = Together(writes, most=8)
    gives_up = trio.CancelScope()

    async def write(item: str, scope: trio.CancelScope | None = None) -> None:
        with scope or trio.CancelScope():
            await together.write(item)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(write, "a")
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(write, "b", gives_up)
        nursery.start_soon(write, "c")
        await trio.testing.wait_all_tasks_blocked()
        gives_up.cancel()
        await trio.testing.wait_all_tasks_blocked()
        writes.release.set()
    assert writes.batches == [["a"], ["c"]]


class Counted:
    """The real store, counting its ``submit_many`` calls."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.writes: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def submit_many(
        self,
        items: Sequence[tuple[Event, AuditEntry]],
        *,
        sending: Sequence[Any] = (),
        tokens: Sequence[str | None] = (),
    ) -> list[Any]:
        self.writes.append(len(items))
        return await self._store.submit_many(items, sending=sending, tokens=tokens)


async def test_events_accepted_at_once_are_stored_together(backend: Backend) -> None:
    async with backend.open() as real:
        store = Counted(real)
        intake = Intake(cast(Store, store), test_pki.shared().signer, LiveAgents())
        now = time.time()
        first = r.event("ev-0", "agent-a", created_at=now)
        same, other = r.event("ev-1", "agent-a", created_at=now), r.event("ev-1", "agent-b")
        events = [first, *(r.event(f"ev-{n}", "agent-a", created_at=now) for n in range(1, 30))]
        answers: dict[int, object] = {}

        async def accept(n: int, event: Event) -> None:
            try:
                record, created = await intake.accept(event)
                answers[n] = (record.event.id, created)
            except EventConflict as exc:
                answers[n] = exc

        async with trio.open_nursery() as nursery:
            for n, event in enumerate(events):
                nursery.start_soon(accept, n, event)
            nursery.start_soon(accept, 100, same)  # the same request twice: one "exists"
        assert len(store.writes) < len(events) and sum(store.writes) == len(events) + 1
        assert {answers[n] for n in (1, 100)} == {("ev-1", True), ("ev-1", False)}
        del answers[100]
        assert {answers[n] for n in range(30) if n != 1} == {
            (f"ev-{n}", True) for n in range(30) if n != 1
        }
        with pytest.raises(EventConflict):  # the same id, another request
            await intake.accept(other)
        stored = [await real.get_event(f"ev-{n}") for n in range(30)]
        assert all(record is not None for record in stored)
