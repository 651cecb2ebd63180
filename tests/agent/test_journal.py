"""The agent's journal keeps each of its ConfigMaps small (agent/journal.py ``SHARD_BYTES``): an
hour's entries go to one ConfigMap until it holds that many bytes, then to the next; a journal
read back knows every entry, and goes on writing where the last one left off. On the test bed's
API server (``SHARD_BYTES`` lowered, so that a few events fill a ConfigMap)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
import trio

from tests.bed import records as r
from transporter.agent import journal as journal_module
from transporter.agent.journal import LABEL, Journal
from transporter.kube import KubeTarget
from transporter.protocol.messages import Status
from transporter.protocol.model import Event, EventState

SHARD = 150


def finished(event_id: str) -> Status:
    return Status(event_id=event_id, seq=3, at=time.time(), state=EventState.COMPLETED)


async def config_maps(target: KubeTarget, namespace: str, agent: str) -> dict[str, dict[str, Any]]:
    found = await target.list_config_maps(namespace, f"{LABEL}={agent}")
    return {item["metadata"]["name"]: item.get("data") or {} for item in found}


async def fresh_journal(target: KubeTarget, count: int) -> tuple[Journal, list[Event]]:
    """A journal of a new agent in a new namespace, loaded, and ``count`` events for it."""
    agent, namespace = f"j-{uuid.uuid4().hex[:8]}", f"journal-{uuid.uuid4().hex[:8]}"
    journal = Journal(target, namespace, agent)
    await journal.load()
    now = time.time()
    return journal, [r.event(f"ev-{n:02d}", agent, created_at=now) for n in range(count)]


async def test_an_hours_entries_spill_over_small_config_maps(
    target: KubeTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal_module, "SHARD_BYTES", SHARD)
    journal, events = await fresh_journal(target, 12)
    agent, namespace, now = journal.agent_id, journal.namespace, events[0].created_at
    for event in events:
        await journal.record(event, finished(event.id))
    maps = await config_maps(target, namespace, agent)
    assert len(maps) >= 3
    for data in maps.values():  # none past the bound (an entry is far smaller than it)
        assert sum(len(key) + len(text) for key, text in data.items()) <= SHARD
    assert sorted(key for data in maps.values() for key in data) == [e.id for e in events]
    first = min(maps, key=len)  # the hour's first is named without a spill number
    assert all(name.startswith(first) for name in maps)

    again = Journal(target, namespace, agent)  # the agent restarted
    await again.load()
    assert set(again.entries) == {e.id for e in events}
    last = max(maps, key=lambda name: (len(name), name))
    more = r.event("ev-99", agent, created_at=now)
    await again.record(more, finished(more.id))
    after = await config_maps(target, namespace, agent)
    holding = [name for name, data in after.items() if more.id in data]
    assert holding in ([last], [f"{first}-{len(maps) + 1}"])  # the last one, or the next
    assert {name: data for name, data in after.items() if name != holding[0]} == {
        name: data for name, data in maps.items() if name != holding[0]
    }


async def test_events_finishing_at_once_keep_each_config_map_within_the_bound(
    target: KubeTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An agent runs several events at once: their entries, written together, still fill one
    ConfigMap only up to the bound before going on to the next."""
    monkeypatch.setattr(journal_module, "SHARD_BYTES", SHARD)
    journal, events = await fresh_journal(target, 16)
    agent, namespace = journal.agent_id, journal.namespace
    async with trio.open_nursery() as nursery:
        for event in events:
            nursery.start_soon(journal.record, event, finished(event.id))
    maps = await config_maps(target, namespace, agent)
    assert len(maps) >= 4
    for data in maps.values():
        assert sum(len(key) + len(text) for key, text in data.items()) <= SHARD
    assert sorted(key for data in maps.values() for key in data) == [e.id for e in events]
