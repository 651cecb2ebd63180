"""Group commit of progress reports, on a real SQLite store."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing

from tests.bed import records as r
from transporter.config.store_spec import StoreSpec
from transporter.cp.group_commit import GroupCommit
from transporter.protocol.model import EventState
from transporter.store import open_store
from transporter.store.sqlite import SQLiteStore


async def test_updates_that_arrive_together_are_written_together(tmp_path: Path) -> None:
    async with open_store(StoreSpec.sqlite_in(tmp_path)) as store:
        assert isinstance(store, SQLiteStore)
        events = [r.event(f"ev-{n}") for n in range(50)]
        await store.submit_many([(e, r.accepted_audit(e)) for e in events])
        statements: list[str] = []
        await store._call(lambda conn: conn.set_trace_callback(statements.append))
        writer = GroupCommit(store)
        results: dict[str, EventState] = {}

        async def report(event_id: str) -> None:
            record = await writer.update(event_id, r.update(EventState.ASSIGNED, r.T0 + 1))
            assert record is not None
            results[event_id] = record.state

        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer.run)
            await trio.testing.wait_all_tasks_blocked()
            async with trio.open_nursery() as reporters:
                for event in events:
                    reporters.start_soon(report, event.id)
            nursery.cancel_scope.cancel()
        await store._call(lambda conn: conn.set_trace_callback(None))
        assert results == {e.id: EventState.ASSIGNED for e in events}
        transactions = statements.count("BEGIN IMMEDIATE")
        assert 1 <= transactions < 10, transactions


async def test_without_a_running_writer_an_update_is_written_on_its_own(tmp_path: Path) -> None:
    async with open_store(StoreSpec.sqlite_in(tmp_path)) as store:
        event = r.event("ev-1")
        await store.submit(event, r.accepted_audit(event))
        writer = GroupCommit(store)
        record = await writer.update("ev-1", r.update(EventState.ASSIGNED, r.T0 + 1))
        assert record is not None
        assert record.state is EventState.ASSIGNED
