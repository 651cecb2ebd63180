"""SQLite files of an older schema version, made from a new one, and their upgrades."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from pathlib import Path

import attrs

from tests.bed import records as r
from tests.store.test_rollouts import audit as rollout_audit
from tests.store.test_rollouts import rollout
from transporter.config.store_spec import StoreSpec
from transporter.protocol.rollout import RolloutKind, RolloutState
from transporter.store import open_store
from transporter.store.json_rows import dump
from transporter.store.sqlite.schema import SCHEMA_VERSION

UNDO: dict[int, tuple[str, ...]] = {
    8: ("DROP TABLE rollouts",),
    9: (
        "ALTER TABLE events ADD COLUMN event TEXT NOT NULL DEFAULT ''",
        "UPDATE events SET event = (SELECT event FROM event_bodies AS b WHERE b.seq = events.seq)",
        "DROP TABLE event_bodies",
        "ALTER TABLE events DROP COLUMN rollout_id",
        "ALTER TABLE events DROP COLUMN created_at",
    ),
    10: (
        "UPDATE rollouts SET body = json_set(body, '$.spec',"
        " json((SELECT spec FROM rollout_specs AS s WHERE s.seq = rollouts.seq)))",
        "DROP TABLE rollout_specs",
    ),
}
"""Statements that take a file of each version back to the one before."""


SPEC_AND_BODY = (
    "SELECT r.body, s.spec FROM rollouts AS r JOIN rollout_specs AS s ON s.seq = r.seq"
    " WHERE r.id = ?"
)
"""A rollout's stored changing part and spec, by its id."""


def as_version(conn: sqlite3.Connection, version: int) -> None:
    """Make the file of ``conn`` (at :data:`SCHEMA_VERSION`) as ``version`` left it."""
    for undone in range(SCHEMA_VERSION, version, -1):
        for statement in UNDO[undone]:
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {version}")
    conn.commit()


def spec(path: Path) -> StoreSpec:
    return StoreSpec.parse(f"sqlite://{path}")


async def test_a_version_8_file_gets_its_events_rollout_and_creation_time_as_columns(
    tmp_path: Path,
) -> None:
    """Events stored before version 9 read their progress as newer ones do (the columns
    ``event_progress`` selects are filled from the stored events)."""
    path = tmp_path / "transporter.db"
    child = attrs.evolve(r.event("ro-1_agent-a"), rollout_id="ro-1")
    async with open_store(spec(path)) as store:
        for event in (r.event(), child):
            await store.submit(event, r.accepted_audit(event))
        for update in r.JOURNEY[:3]:
            await store.update_event(child.id, update)
        expected = await store.event_progress(["ev-1", child.id])
    with contextlib.closing(sqlite3.connect(path)) as conn:
        as_version(conn, 8)
    async with open_store(spec(path)) as store:
        assert await store.event_progress(["ev-1", child.id]) == expected
    assert [p.rollout_id for p in expected if p] == ["", "ro-1"]
    assert [p.phase for p in expected if p] == [None, r.JOURNEY[2].phase]
    assert [p.created_at for p in expected if p] == [r.T0, r.T0]


async def test_a_version_9_file_gets_its_rollouts_specs_apart(tmp_path: Path) -> None:
    """Rollouts stored whole before version 10 read back as they were, and their specs are
    apart from the rest after (a save no longer writes them)."""
    path = tmp_path / "transporter.db"
    async with open_store(spec(path)) as store:
        first, _ = await store.create_rollout(rollout("ro-1"), rollout_audit(rollout("ro-1")))
        saved = await store.save_rollout(attrs.evolve(first, message="saved", wave=1))
        plan = rollout("ro-2", kind=RolloutKind.PLAN, state=RolloutState.COMPLETED)
        await store.create_rollout(plan, rollout_audit(plan))
        before = await store.list_rollouts()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        as_version(conn, 9)
        (body,) = conn.execute("SELECT body FROM rollouts WHERE id = 'ro-1'").fetchone()
        assert json.loads(body)["spec"]["payload"]["manifests"] == [r.MANIFEST]
    async with open_store(spec(path)) as store:
        assert await store.list_rollouts() == before
        assert await store.get_rollout("ro-1") == saved
        assert saved is not None
        again = await store.save_rollout(attrs.evolve(saved, message="after"))
        assert again is not None and again.version == 3
    with contextlib.closing(sqlite3.connect(path)) as conn:
        body, spec_text = conn.execute(SPEC_AND_BODY, ("ro-1",)).fetchone()
        assert "spec" not in json.loads(body)
        assert spec_text == dump(first.spec)  # the very text a new store writes


async def test_a_report_on_an_event_of_megabytes_writes_kilobytes(tmp_path: Path) -> None:
    """The event's text is written once, apart from its progress: a report rewrites the small
    row of its progress only (the write-ahead log, emptied before, grows by a few pages)."""
    path = tmp_path / "transporter.db"
    event = r.event("ev-big", manifests=("data: " + "x" * 2_000_000 + "\n",))
    async with open_store(spec(path)) as store:
        await store.submit(event, r.accepted_audit(event))
        for update in r.JOURNEY:
            with contextlib.closing(sqlite3.connect(path)) as conn:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            assert await store.update_event(event.id, update) is not None
            assert os.stat(f"{path}-wal").st_size < 100_000
        record = await store.get_event(event.id)
        assert record is not None and record.event == event
