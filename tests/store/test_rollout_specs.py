"""A rollout's spec (its payload, a plan's apply's expects: megabytes) is written once, at its
creation; a save writes the rest only, refuses a record whose spec is another, and reading it
again decodes the spec only when the store does not keep it decoded already."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import coredis
import pytest

from tests.bed.store_backends import Backend
from tests.store.test_rollouts import create, moved, rollout
from tests.store.test_sqlite_upgrades import SPEC_AND_BODY
from transporter.protocol.model import K8sPayload
from transporter.protocol.rollout import RolloutKind, RolloutState
from transporter.store import StoreError
from transporter.store.json_rows import dump
from transporter.store.redis.keys import DEFAULT_PREFIX, Keys

KEYS = Keys(DEFAULT_PREFIX)
MARK = "only-in-the-payload-" + "x" * 1000


@asynccontextmanager
async def raw_redis(backend: Backend) -> AsyncIterator[coredis.Redis[str]]:
    assert backend.redis is not None
    async with coredis.Redis.from_url(backend.redis.url, decode_responses=True) as raw:
        yield raw


async def stored_texts(backend: Backend, rollout_id: str) -> tuple[str, str]:
    """What the store keeps of the rollout: the text a save writes, and the spec's."""
    if backend.kind == "sqlite":
        assert backend.spec.path is not None
        conn = sqlite3.connect(backend.spec.path)
        row = conn.execute(SPEC_AND_BODY, (rollout_id,)).fetchone()
        conn.close()
        return str(row[0]), str(row[1])
    async with raw_redis(backend) as raw:
        body = await raw.hget(KEYS.rollout, rollout_id)
        spec = await raw.hget(KEYS.rollout_spec, rollout_id)
    assert body is not None and spec is not None
    return body, spec


async def put_spec_text(backend: Backend, rollout_id: str, text: str) -> None:
    """Replace the stored spec's text behind the store's back."""
    if backend.kind == "sqlite":
        assert backend.spec.path is not None
        conn = sqlite3.connect(backend.spec.path)
        conn.execute(
            "UPDATE rollout_specs SET spec = ? WHERE seq = (SELECT seq FROM rollouts WHERE id = ?)",
            (text, rollout_id),
        )
        conn.commit()
        conn.close()
        return
    async with raw_redis(backend) as raw:
        await raw.hset(KEYS.rollout_spec, {rollout_id: text})


async def test_a_save_writes_the_changing_part_only(backend: Backend) -> None:
    """The spec's text is altered behind the store's back after the creation: saves leave it
    as it is (they never write it), and a store opened afresh reads it."""
    record = rollout()
    record = attrs.evolve(record, spec=attrs.evolve(record.spec, payload=K8sPayload((MARK,))))
    async with backend.open() as store:
        stored = await create(store, record)
        body, spec_text = await stored_texts(backend, "ro-1")
        assert MARK not in body and MARK in spec_text
        other = attrs.evolve(record.spec, created_by="someone else")
        await put_spec_text(backend, "ro-1", dump(other))
        saved = await moved(store, stored, state=RolloutState.PAUSED, message="waits")
        saved = await moved(store, saved, wave=1)
        assert saved.spec == record.spec  # this store keeps the spec it wrote
        body, spec_text = await stored_texts(backend, "ro-1")
        assert MARK not in body and spec_text == dump(other)
    async with backend.open() as store:
        assert await store.get_rollout("ro-1") == attrs.evolve(saved, spec=other)


async def test_a_save_with_another_spec_is_refused_and_writes_nothing(backend: Backend) -> None:
    async with backend.open() as store:
        stored = await create(store, rollout())
        changed = attrs.evolve(stored.spec, payload=K8sPayload(("kind: Other\n",)))
        with pytest.raises(ValueError, match="'ro-1' has another spec"):
            await store.save_rollout(attrs.evolve(stored, spec=changed, message="no"))
        assert await store.get_rollout("ro-1") == stored
    async with backend.open() as store:  # keeps no spec yet: the kind is compared
        plan = attrs.evolve(stored.spec, kind=RolloutKind.PLAN)
        with pytest.raises(ValueError, match="kind 'plan'"):
            await store.save_rollout(attrs.evolve(stored, spec=plan, message="no"))
        assert await store.get_rollout("ro-1") == stored
        assert (await store.list_rollouts(kind=RolloutKind.PLAN)).items == []


async def test_listings_decode_each_spec_once(backend: Backend) -> None:
    """A listing reads the specs the store does not keep; the next ones use those kept (the
    stored texts are spoilt in between: only a store opened afresh sees it)."""
    async with backend.open() as store:
        for n in range(5):
            await create(store, rollout(f"ro-{n}"))
    async with backend.open() as store:
        first = await store.list_rollouts()
        for n in range(5):
            await put_spec_text(backend, f"ro-{n}", "{")
        assert await store.list_rollouts() == first
        assert await store.get_rollout("ro-3") == first.items[1]
    async with backend.open() as store:
        with pytest.raises(StoreError, match="cannot be read"):
            await store.list_rollouts()
