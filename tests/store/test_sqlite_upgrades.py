"""SQLite files of an older schema version, made from a new one, and their upgrades."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import attrs

from tests.bed import records as r
from transporter.config.store_spec import StoreSpec
from transporter.store import open_store
from transporter.store.sqlite.schema import SCHEMA_VERSION

UNDO: dict[int, tuple[str, ...]] = {
    8: ("DROP TABLE rollouts",),
    9: (
        "ALTER TABLE events DROP COLUMN rollout_id",
        "ALTER TABLE events DROP COLUMN created_at",
    ),
}
"""Statements that take a file of each version back to the one before."""


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
