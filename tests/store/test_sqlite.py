"""What only the SQLite store has: its file, its settings, its schema version, a locked file."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path

import attrs
import pytest
import trio

from tests.bed import records as r
from tests.store.test_rollouts import rollout
from tests.store.test_sqlite_upgrades import as_version
from transporter.config.store_spec import StoreSpec
from transporter.protocol import codec
from transporter.protocol.model import (
    AuditEntry,
    EventRecord,
    EventState,
    Phase,
    ResourceResult,
    ResourceStatus,
)
from transporter.protocol.status import StatusUpdate, accepted, advance
from transporter.security.audit_chain import GENESIS, ChainHead
from transporter.security.tokens import Role, new_token
from transporter.store import StoreError, StoreUnavailable, open_store, verify_audit
from transporter.store.sqlite import SQLiteStore
from transporter.store.sqlite.audit import ROWS_AT_ONCE
from transporter.store.sqlite.cache import EventCache
from transporter.store.sqlite.schema import (
    AFTER_MIGRATION,
    MIGRATIONS,
    OPEN_ROLLOUTS,
    SCHEMA_VERSION,
)


def spec(path: Path) -> StoreSpec:
    return StoreSpec.parse(f"sqlite://{path}")


async def test_the_file_and_its_folders_are_made_with_wal_and_a_schema_version(
    tmp_path: Path,
) -> None:
    path = tmp_path / "new" / "folders" / "transporter.db"
    async with open_store(spec(path)) as store:
        await store.submit(r.event(), r.accepted_audit(r.event()))
        assert isinstance(store, SQLiteStore)
        synchronous = await store._call(
            lambda conn: conn.execute("PRAGMA synchronous").fetchone()[0]
        )
        assert synchronous == 1  # NORMAL, but for accepting an event (below)
        statements: list[str] = []
        await store._call(lambda conn: conn.set_trace_callback(statements.append))
        await store.submit(r.event("ev-2"), r.accepted_audit(r.event("ev-2")))
        await store._call(lambda conn: conn.set_trace_callback(None))
        begin = statements.index("BEGIN IMMEDIATE")
        commit = statements.index("COMMIT", begin)
        assert statements[begin - 1] == "PRAGMA synchronous = FULL"
        assert statements[commit + 1] == "PRAGMA synchronous = NORMAL"
        foreign_keys = await store._call(
            lambda conn: conn.execute("PRAGMA foreign_keys").fetchone()[0]
        )
        assert foreign_keys == 1
    assert path.is_file()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("SELECT id, target_agent, state FROM events").fetchall() == [
            ("ev-1", "agent-a", "queued"),
            ("ev-2", "agent-a", "queued"),
        ]
    conn.close()


async def test_a_file_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "transporter.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StoreError, match="schema version 99"):
        async with open_store(spec(path)):
            pass


async def test_a_file_that_is_not_a_database_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "transporter.db"
    path.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(StoreUnavailable):
        async with open_store(spec(path)):
            pass


async def test_a_file_locked_by_another_writer_times_out_then_works(tmp_path: Path) -> None:
    path = tmp_path / "transporter.db"
    async with open_store(spec(path), call_timeout=0.3) as store:
        other = sqlite3.connect(path, autocommit=True)
        try:
            other.execute("BEGIN IMMEDIATE")
            start = trio.current_time()
            with pytest.raises(StoreUnavailable):
                await store.submit(r.event(), r.accepted_audit(r.event()))
            assert trio.current_time() - start < 2.0
            assert await store.get_event("ev-1") is None  # readers are not blocked by WAL
            other.execute("ROLLBACK")
        finally:
            other.close()
        record, created = await store.submit(r.event(), r.accepted_audit(r.event()))
        assert created
        assert await store.get_event("ev-1") == record


async def test_a_closed_store_refuses_calls(tmp_path: Path) -> None:
    store = await SQLiteStore.open(tmp_path / "transporter.db")
    await store.ping()
    await store.aclose()
    await store.aclose()  # twice is fine
    with pytest.raises(StoreUnavailable, match="closed"):
        await store.ping()


async def test_a_version_1_file_is_migrated_without_losing_an_event(tmp_path: Path) -> None:
    path = tmp_path / "transporter.db"
    event = r.event("ev-old")
    record = advance(
        accepted(EventRecord(event=event, seq=1)),
        r.update(
            EventState.FAILED,
            r.T0 + 5,
            Phase.FAILED,
            "boom",
            (ResourceResult("v1", "ConfigMap", "c", "ns", ResourceStatus.FAILED, "no"),),
        ),
    )
    assert record is not None
    conn = sqlite3.connect(path)
    for statement in MIGRATIONS[1]:
        conn.execute(statement)
    conn.execute(
        "INSERT INTO events (id, target_agent, state, expires_at, record) VALUES (?, ?, ?, ?, ?)",
        (
            event.id,
            event.target_agent,
            record.state.value,
            event.expires_at,
            json.dumps(codec.unstructure(record)),
        ),
    )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    async with open_store(spec(path)) as store:
        assert await store.get_event("ev-old") == record
        assert (await store.list_events()).items == [record]


async def test_a_version_2_file_gets_its_audit_entries_chained(tmp_path: Path) -> None:
    """Entries written before the chain are sealed in their order when the file is upgraded,
    and numbered 1, 2, 3 … (were rows ever deleted, their numbers close up)."""
    path = tmp_path / "transporter.db"
    conn = sqlite3.connect(path)
    for version in (1, 2):
        for statement in MIGRATIONS[version]:
            conn.execute(statement)
    old = [
        AuditEntry(at=r.T0 + seq, action="agent.connected", agent_id=f"a{seq}", seq=seq)
        for seq in (1, 2, 5)
    ]
    for entry in old:
        data = codec.unstructure(entry)
        del data["prev_hash"], data["hash"]  # as version 2 wrote them
        conn.execute(
            "INSERT INTO audit (seq, at, action, agent_id, event_id, record)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (entry.seq, entry.at, entry.action, entry.agent_id, "", json.dumps(data)),
        )
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    async with open_store(spec(path)) as store:
        entries = await store.audit_after(limit=10)
        assert [entry.seq for entry in entries] == [1, 2, 3]
        assert [entry.agent_id for entry in entries] == ["a1", "a2", "a5"]
        assert [r.unsealed(entry) for entry in entries] == [r.unsealed(e) for e in old]
        assert entries[0].prev_hash == GENESIS
        assert await store.audit_head() == ChainHead(3, entries[-1].hash)
        later = await store.audit(AuditEntry(at=r.T0, action="x"))
        assert (later.seq, later.prev_hash) == (4, entries[-1].hash)
        result = await verify_audit(store)
        assert result.intact
        assert result.count == 4


async def test_a_version_3_file_gets_a_table_of_tokens(tmp_path: Path) -> None:
    path = tmp_path / "transporter.db"
    conn = sqlite3.connect(path)  # the file as version 3 left it, with an audit entry
    for version in (1, 2, 3):
        for statement in MIGRATIONS[version]:
            conn.execute(statement)
    AFTER_MIGRATION[3](conn)
    conn.execute("PRAGMA user_version = 3")
    conn.commit()
    conn.close()
    _, token = new_token(name="ci", role=Role.ADMIN, agents=(), now=r.T0)
    async with open_store(spec(path)) as store:
        await store.audit(AuditEntry(at=r.T0, action="agent.connected"))
        assert await store.list_tokens() == []
        await store.create_token(token, AuditEntry(at=r.T0, action="token.created"))
        assert await store.list_tokens() == [token]
        result = await verify_audit(store)
        assert result.intact and result.count == 2
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def _tables_and_indexes(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    return conn.execute(
        "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name"
    ).fetchall()


async def test_a_version_7_file_gets_a_table_of_rollouts(tmp_path: Path) -> None:
    """A file as version 7 left it (its events and audit chain) is upgraded: nothing lost, and
    rollouts are stored after."""
    path = tmp_path / "transporter.db"
    async with open_store(spec(path)) as store:
        record, _ = await store.submit(r.event(), r.accepted_audit(r.event()))
    with contextlib.closing(sqlite3.connect(path)) as conn:
        as_version(conn, 7)
        with contextlib.closing(sqlite3.connect(":memory:")) as fresh:
            for version in range(1, 8):
                for statement in MIGRATIONS[version]:
                    fresh.execute(statement)
            assert _tables_and_indexes(conn) == _tables_and_indexes(fresh)  # version 7 exactly
    stored = attrs.evolve(rollout(), version=1)
    async with open_store(spec(path)) as store:
        assert await store.get_event("ev-1") == record
        created, _ = await store.create_rollout(rollout(), AuditEntry(at=r.T0, action="r"))
        assert created == attrs.evolve(stored, seq=created.seq)
        assert await store.open_rollouts() == ["ro-1"]
        result = await verify_audit(store)
        assert result.intact and result.count == 2
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        names = {name for _, name in _tables_and_indexes(conn)}
        assert {"rollouts", "rollouts_open", "rollouts_by_state", "rollouts_by_kind"} <= names
        query = f"SELECT id FROM rollouts WHERE state IN {OPEN_ROLLOUTS} ORDER BY seq"  # noqa: S608
        plan = conn.execute("EXPLAIN QUERY PLAN " + query).fetchall()
        assert "USING INDEX rollouts_" in str(plan)  # open ones from an index, not a scan


async def test_a_missing_chain_head_stops_appends_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "transporter.db"
    async with open_store(spec(path)) as store:
        await store.audit(AuditEntry(at=r.T0, action="x"))
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM audit_head")
    conn.commit()
    conn.close()
    async with open_store(spec(path)) as store:
        with pytest.raises(StoreError, match="chain head is missing"):
            await store.audit(AuditEntry(at=r.T0, action="x"))
        result = await verify_audit(store)
        assert result.broken is not None
        assert result.broken.reason == "the store's head is seq 0, but the log goes on to seq 1"


async def test_a_write_rolled_back_leaves_no_remembered_progress_behind(tmp_path: Path) -> None:
    """A batch that fails after an event's progress was written (its audit entry cannot be
    appended) is rolled back whole; what the store remembered of it is not used after."""
    path = tmp_path / "transporter.db"
    async with open_store(spec(path)) as store:
        await store.submit(r.event(), r.accepted_audit(r.event()))
        before = await store.get_event("ev-1")
        with contextlib.closing(sqlite3.connect(path)) as conn:
            head = conn.execute("SELECT id, seq, hash FROM audit_head").fetchone()
            conn.execute("DELETE FROM audit_head")
            conn.commit()
        with pytest.raises(StoreError, match="chain head is missing"):
            await store.update_many(
                [("ev-1", r.JOURNEY[0], AuditEntry(at=r.T0, action="event.delivered"))]
            )
        with contextlib.closing(sqlite3.connect(path)) as conn:
            conn.execute("INSERT INTO audit_head (id, seq, hash) VALUES (?, ?, ?)", head)
            conn.commit()
        assert await store.get_event("ev-1") == before
        moved = await store.update_event("ev-1", r.JOURNEY[0])
        assert moved is not None and moved.state is EventState.ASSIGNED
        assert (await verify_audit(store)).intact


async def test_a_batch_appends_its_audit_entries_in_order_and_moves_the_head_once(
    tmp_path: Path,
) -> None:
    path = tmp_path / "transporter.db"
    events = [r.event(f"ev-{n}") for n in range(5)]
    async with open_store(spec(path)) as store:
        await store.submit_many([(ev, r.accepted_audit(ev)) for ev in events])
        assert isinstance(store, SQLiteStore)
        statements: list[str] = []
        await store._call(lambda conn: conn.set_trace_callback(statements.append))
        delivered = [
            AuditEntry(at=r.T0 + n, action="event.delivered", event_id=ev.id)
            for n, ev in enumerate(events)
        ]
        await store.update_many(
            [(ev.id, r.JOURNEY[0], entry) for ev, entry in zip(events, delivered, strict=True)]
        )
        await store._call(lambda conn: conn.set_trace_callback(None))
        assert sum(s.startswith("UPDATE audit_head") for s in statements) == 1
        entries = await store.audit_after(5)
        assert [(e.seq, e.event_id) for e in entries] == [(6 + n, f"ev-{n}") for n in range(5)]
        assert await store.audit_head() == ChainHead(10, entries[-1].hash)
        assert (await verify_audit(store)).intact


async def test_a_large_batch_is_few_statements_and_one_intact_chain(tmp_path: Path) -> None:
    """Each statement is a trip for the interpreter's lock between the store's thread and the
    event loop: a new event is written without a read first, and a transaction's audit records
    go in one statement per :data:`ROWS_AT_ONCE`."""
    count = 2 * ROWS_AT_ONCE + 50
    events = [r.event(f"ev-{n}") for n in range(count)]
    async with open_store(spec(tmp_path / "transporter.db")) as store:
        assert isinstance(store, SQLiteStore)
        statements: list[str] = []
        await store._call(lambda conn: conn.set_trace_callback(statements.append))
        results = await store.submit_many([(ev, r.accepted_audit(ev)) for ev in events])
        await store._call(lambda conn: conn.set_trace_callback(None))
        assert all(created for _, created in results)  # type: ignore[misc]
        assert sum(s.startswith("INSERT INTO audit ") for s in statements) == 3
        assert not any(s.startswith("SELECT seq, progress FROM events") for s in statements)
        entries = await store.audit_after(0, limit=1000)
        entries += await store.audit_after(1000, limit=1000)
        assert [(e.seq, e.event_id) for e in entries] == [(n + 1, f"ev-{n}") for n in range(count)]
        assert (await verify_audit(store)).intact
        # Again: the same requests are answered from what is stored, nothing written twice.
        again = await store.submit_many([(ev, r.accepted_audit(ev)) for ev in events[:3]])
        assert [created for _, created in again] == [False] * 3  # type: ignore[misc]
        assert (await store.audit_head()).seq == count


async def test_a_batch_rolled_back_leaves_nothing_in_the_event_cache(tmp_path: Path) -> None:
    """A write that fails (here the audit record's ``seq`` taken behind the store's back)
    keeps nothing of its batch: not in the file, nor in the process's cache of it."""
    path = tmp_path / "transporter.db"
    async with open_store(spec(path)) as store:
        assert isinstance(store, SQLiteStore)
        head = await store.audit_head()
        with contextlib.closing(sqlite3.connect(path)) as conn:
            conn.execute(
                "INSERT INTO audit (seq, at, action, agent_id, event_id, record)"
                " VALUES (?, 0, 'x', '', '', '{}')",
                (head.seq + 1,),
            )
            conn.commit()
        events = [r.event(f"ev-{n}") for n in range(3)]
        with pytest.raises(StoreError):
            await store.submit_many([(ev, r.accepted_audit(ev)) for ev in events])
        assert [store._events.get(ev.id) for ev in events] == [None, None, None]
        assert [await store.get_event(ev.id) for ev in events] == [None, None, None]


async def test_a_row_without_its_body_stops_its_batch(tmp_path: Path) -> None:
    path = tmp_path / "transporter.db"
    async with open_store(spec(path)) as store:
        await store.submit(r.event("ev-1"), r.accepted_audit(r.event("ev-1")))
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("DELETE FROM event_bodies")
        conn.commit()
    async with open_store(spec(path)) as store:  # a new process: nothing cached
        batch = [r.event("ev-2"), r.event("ev-1")]
        with pytest.raises(StoreError, match="ev-1 is in the SQLite store without its body"):
            await store.submit_many([(ev, r.accepted_audit(ev)) for ev in batch])
        assert await store.get_event("ev-2") is None


def test_the_event_cache_keeps_manifests_up_to_its_budget() -> None:
    cache = EventCache(size=100, manifest_bytes=1000)
    events = [r.event(f"ev-{n}", manifests=("x" * 400,)) for n in range(4)]
    for ev in events:
        assert cache.put(ev) is ev
    assert [cache.get(ev.id) is not None for ev in events] == [False, False, True, True]
    assert cache.events.weight == 800
    big = r.event("big", manifests=("y" * 2000,))
    assert cache.put(big) is big  # larger than the whole budget: not kept, nothing evicted
    assert cache.get("big") is None
    assert cache.events.weight == 800
    assert cache.put(events[3]) is events[3]  # kept again: counted once
    assert cache.events.weight == 800
    few = EventCache(size=2)
    for ev in events:
        few.put(ev)
    assert [few.get(ev.id) is not None for ev in events] == [False, False, True, True]


async def test_the_files_are_the_owners_alone_and_looser_ones_are_made_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every submitted Secret is in the file: a new folder is 0700, the file and its -wal and
    -shm 0600, whatever the umask; files of ours found looser are made owner-only at open, a
    folder found looser is said (it may be shared on purpose)."""
    path = tmp_path / "data" / "transporter.db"
    async with open_store(spec(path)) as store:
        await store.submit(r.event(), r.accepted_audit(r.event()))
        modes = {p.name: p.stat().st_mode & 0o777 for p in path.parent.iterdir()}
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert modes == dict.fromkeys(modes, 384) and "transporter.db" in modes
    path.chmod(0o644)
    path.parent.chmod(0o755)
    with caplog.at_level("WARNING", logger="transporter.store"):
        async with open_store(spec(path)):
            pass
    assert path.stat().st_mode & 0o777 == 0o600
    assert "was readable by other users (mode 0o644): made owner-only" in caplog.text
    assert f"chmod 700 {path.parent}" in caplog.text


async def test_a_row_whose_event_says_another_id_never_stands_for_that_event(
    tmp_path: Path,
) -> None:
    """A tampered row (its JSON names another event's id) shows under its own id only: the
    other event is still read from its own row, whichever was read first."""
    path = tmp_path / "transporter.db"
    genuine, other = r.event("genuine"), r.event("other")
    async with open_store(spec(path)) as store:
        await store.submit(genuine, r.accepted_audit(genuine))
        await store.submit(other, r.accepted_audit(other))
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        (seq,) = conn.execute("SELECT seq FROM events WHERE id = 'other'").fetchone()
        (text,) = conn.execute("SELECT event FROM event_bodies WHERE seq = ?", (seq,)).fetchone()
        tampered = json.loads(text) | {"id": "genuine"}
        tampered["payload"]["manifests"] = ["kind: Evil\n"]
        conn.execute("UPDATE event_bodies SET event = ? WHERE seq = ?", (json.dumps(tampered), seq))
    async with open_store(spec(path)) as store:
        shown = await store.get_event("other")
        assert shown is not None and shown.event.id == "other"
        assert shown.event.payload.manifests == ("kind: Evil\n",)
        real = await store.get_event("genuine")
        assert real is not None and real.event.payload.manifests == genuine.payload.manifests


async def test_an_events_updates_in_one_batch_write_its_row_once(tmp_path: Path) -> None:
    """Its first phases come in one message: one read, each update advanced from the one
    before, one row written (the results, the timeline and the audit as if one by one)."""
    async with open_store(StoreSpec.sqlite_in(tmp_path)) as store:
        assert isinstance(store, SQLiteStore)
        for n in (1, 2):
            await store.submit(r.event(f"ev-{n}"), r.accepted_audit(r.event(f"ev-{n}")))
        statements: list[str] = []

        def trace(conn: sqlite3.Connection) -> None:
            conn.set_trace_callback(statements.append)

        await store._call(trace)
        done = AuditEntry(
            at=r.T0 + 6, action="event.completed", agent_id="agent-a", event_id="ev-1"
        )
        items: list[tuple[str, StatusUpdate, AuditEntry | None]]
        items = [("ev-1", update, None) for update in r.JOURNEY[:5]]
        items += [("ev-2", r.JOURNEY[0], None), ("ev-1", r.JOURNEY[5], done)]
        results = await store.update_many(items)
        assert [None if x is None else x.phase for x in results] == [
            None,
            Phase.RECEIVED,
            Phase.VALIDATING,
            Phase.APPLYING,
            Phase.VERIFYING,
            None,
            Phase.COMPLETED,
        ]
        updates = [s for s in statements if s.startswith("UPDATE events")]
        assert len(updates) == 2  # one row each
        stored = await store.get_event("ev-1")
        assert stored is not None and stored == results[-1]
        assert [entry.phase for entry in stored.timeline][1:] == [
            None,
            Phase.RECEIVED,
            Phase.VALIDATING,
            Phase.APPLYING,
            Phase.VERIFYING,
            Phase.COMPLETED,
        ]
        assert [e.action for e in await store.audit_after(0)][-1] == "event.completed"
        assert (await verify_audit(store)).intact
