"""A real control plane in the test's trio loop, for raw clients of its two ports."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
import trio

from tests.bed.clients import CHANNEL_LIMIT
from tests.bed.harness import FAST_CHANNEL, ControlPlane


@pytest.fixture
async def cp(nursery: trio.Nursery, tmp_path: Path) -> ControlPlane:
    """A control plane on the embedded SQLite store whose agent channel takes messages of at
    most :data:`CHANNEL_LIMIT` characters (a setting, made small here)."""
    # Raw agents send no heartbeats: their connections must not be closed as dead meanwhile.
    channel = attrs.evolve(FAST_CHANNEL, max_message_bytes=CHANNEL_LIMIT, dead_heartbeats=1000)
    plane = ControlPlane(nursery, tmp_path / "cp", channel=channel)
    await plane.start()
    return plane
