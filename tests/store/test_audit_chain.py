"""The audit log's hash chain, in every store: each path extends one chain, concurrent appends
never fork it, and an edit made behind the store's back (in the SQLite file, in Redis) is found
by the verifier, which names the first record that does not match."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable
from typing import Any

import attrs
import coredis
import pytest
import trio

from tests.bed import records as r
from tests.bed.store_backends import Backend
from transporter.protocol.model import AuditEntry, EventState, Phase
from transporter.security.audit_chain import GENESIS, ChainHead, canonical, entry_hash
from transporter.store import EventConflict, Store, verify_audit

# --- helpers ---------------------------------------------------------------------------------


async def whole_log(store: Store, page: int = 1000) -> list[AuditEntry]:
    """Oldest first, through ``audit_after`` as the verifier reads it."""
    entries: list[AuditEntry] = []
    after = 0
    while batch := await store.audit_after(after, limit=page):
        entries += batch
        after = batch[-1].seq
    return entries


def assert_one_chain(entries: list[AuditEntry]) -> None:
    """Independently of the verifier: seqs 1..N, each linked to the one before, hashes right."""
    assert [entry.seq for entry in entries] == list(range(1, len(entries) + 1))
    previous = GENESIS
    for entry in entries:
        assert entry.prev_hash == previous, entry
        assert entry.hash == hashlib.sha256(canonical(entry)).hexdigest(), entry
        previous = entry.hash


def audit(n: int, **fields: Any) -> AuditEntry:
    fields.setdefault("action", "agent.connected")
    return AuditEntry(at=r.T0 + n, actor="cp", agent_id=f"a{n}", **fields)


async def fill(backend: Backend, count: int = 10) -> list[AuditEntry]:
    """``count`` records through ``audit``; returns them as stored."""
    async with backend.open() as store:
        return [await store.audit(audit(n, detail=f"record {n + 1}")) for n in range(count)]


# --- every path extends one chain -------------------------------------------------------------


async def test_an_empty_log_is_intact(store: Store) -> None:
    assert await store.audit_head() == ChainHead(0, GENESIS)
    assert await store.audit_after() == []
    result = await verify_audit(store)
    assert result.intact
    assert (result.count, result.head) == (0, ChainHead())
    assert result.describe() == "audit log intact: 0 records; there are none"


async def test_every_path_that_appends_extends_one_chain(store: Store) -> None:
    appended: list[AuditEntry] = []  # as each call returned it, where it says
    first = await store.audit(audit(0))
    appended.append(first)
    assert (first.seq, first.prev_hash, first.hash) == (1, GENESIS, entry_hash(first))

    ev1 = r.event("ev-1")
    await store.submit(ev1, r.accepted_audit(ev1))
    _, created = await store.submit(ev1, r.accepted_audit(ev1))  # a retry: no record
    assert not created
    clash = attrs.evolve(ev1, target_agent="agent-z")
    with pytest.raises(EventConflict):  # a conflict: no record
        await store.submit(clash, r.accepted_audit(clash))

    batch = [r.event(f"ev-{n}") for n in (2, 3, 4)]
    results = await store.submit_many(
        [(e, r.accepted_audit(e)) for e in [batch[0], ev1, batch[1], clash, batch[2]]]
    )
    assert [not isinstance(x, tuple) or x[1] for x in results] == [
        True,
        False,
        True,
        True,
        True,
    ]

    done = AuditEntry(at=r.T0 + 5, action="event.completed", agent_id="agent-a", event_id="ev-1")
    assert await store.update_event("ev-1", r.update(EventState.ASSIGNED, r.T0 + 1)) is not None
    finished = r.update(EventState.COMPLETED, r.T0 + 5, Phase.COMPLETED)
    assert await store.update_event("ev-1", finished, audit=done) is not None
    late = attrs.evolve(done, action="event.failed")
    failed = r.update(EventState.FAILED, r.T0 + 6, Phase.FAILED)
    assert await store.update_event("ev-1", failed, audit=late) is None  # terminal: no record
    assert await store.update_event("ev-nope", failed, audit=late) is None  # unknown: no record

    updated = await store.update_many(
        [
            ("ev-2", r.update(EventState.ASSIGNED, r.T0 + 7), None),
            ("ev-2", r.update(EventState.FAILED, r.T0 + 8), attrs.evolve(late, event_id="ev-2")),
            ("ev-3", r.update(EventState.EXPIRED, r.T0 + 9), attrs.evolve(late, event_id="ev-3")),
            ("ev-2", r.update(EventState.COMPLETED, r.T0 + 9), done),  # terminal: no record
        ]
    )
    assert [x is not None for x in updated] == [True, True, True, False]
    appended.append(await store.audit(audit(99)))

    log = await whole_log(store)
    assert [(entry.action, entry.event_id) for entry in log] == [
        ("agent.connected", ""),
        ("event.accepted", "ev-1"),
        ("event.accepted", "ev-2"),
        ("event.accepted", "ev-3"),
        ("event.accepted", "ev-4"),
        ("event.completed", "ev-1"),
        ("event.failed", "ev-2"),
        ("event.failed", "ev-3"),
        ("agent.connected", ""),
    ]
    assert_one_chain(log)
    assert log[0] == appended[0] and log[-1] == appended[-1]
    assert await store.audit_head() == ChainHead(9, log[-1].hash)
    assert (await store.list_audit(limit=100)).items == log[::-1]
    result = await verify_audit(store)
    assert result.intact, result.describe()
    assert (result.count, result.head) == (9, ChainHead(9, log[-1].hash))
    assert (
        result.describe() == f"audit log intact: 9 records; the last is seq 9, hash {log[-1].hash}"
    )


async def test_what_the_caller_puts_in_the_chain_fields_is_replaced(store: Store) -> None:
    forged = audit(0, seq=42, prev_hash="f" * 64, hash="e" * 64)
    stored = await store.audit(forged)
    assert (stored.seq, stored.prev_hash) == (1, GENESIS)
    assert stored.hash == entry_hash(stored) != "e" * 64
    ev = r.event()
    await store.submit(ev, attrs.evolve(r.accepted_audit(ev), seq=7, hash="x"))
    assert_one_chain(await whole_log(store))
    assert (await verify_audit(store)).intact


async def test_audit_after_pages_through_the_log_oldest_first(store: Store) -> None:
    stored = [await store.audit(audit(n)) for n in range(7)]
    assert await store.audit_after(0, limit=3) == stored[:3]
    assert await store.audit_after(3, limit=3) == stored[3:6]
    assert await store.audit_after(6, limit=3) == stored[6:]
    assert await store.audit_after(7) == []
    assert await whole_log(store, page=2) == stored
    result = await verify_audit(store, page=2)
    assert result.intact
    assert result.count == 7


async def test_the_chain_goes_on_after_the_store_is_opened_again(backend: Backend) -> None:
    before = await fill(backend, 3)
    async with backend.open() as store:
        assert await store.audit_head() == ChainHead(3, before[-1].hash)
        later = await store.audit(audit(10))
        assert (later.seq, later.prev_hash) == (4, before[-1].hash)
        assert_one_chain(await whole_log(store))
        assert (await verify_audit(store)).count == 4


async def test_concurrent_appends_from_many_tasks_and_stores_keep_one_chain(
    backend: Backend,
) -> None:
    """Three stores on the same data (three control-plane replicas: three connections to the
    SQLite file, three Redis clients), each with many tasks appending through every path."""
    events = [r.event(f"ev-{n}", f"agent-{n % 3}") for n in range(30)]
    async with backend.open() as one, backend.open() as two, backend.open() as three:
        stores = [one, two, three]

        async def journey(n: int) -> None:
            store = stores[n % 3]
            event = events[n]
            await store.submit(event, r.accepted_audit(event))
            await store.audit(audit(n, event_id=event.id))
            step = r.update(EventState.IN_PROGRESS, r.T0 + 2, Phase.APPLYING)
            await store.update_many([(event.id, step, audit(n, action="event.applying"))])
            done = r.update(EventState.COMPLETED, r.T0 + 3, Phase.COMPLETED)
            finished = audit(n, action="event.completed", event_id=event.id)
            assert await store.update_event(event.id, done, audit=finished) is not None

        async def batch(k: int) -> None:
            store = stores[k % 3]
            more = [r.event(f"batch-{k}-{n}") for n in range(5)]
            await store.submit_many([(e, r.accepted_audit(e)) for e in more])
            sent = r.update(EventState.ASSIGNED, r.T0 + 1)
            received = r.update(EventState.IN_PROGRESS, r.T0 + 2, Phase.RECEIVED)
            steps = [
                (e.id, step, audit(k, action=f"event.{name}", event_id=e.id))
                for e in more
                for name, step in (("delivered", sent), ("received", received))
            ]
            updated = await store.update_many(steps)  # two of each event's steps in one batch
            assert [None if u is None else u.state for u in updated] == [
                EventState.ASSIGNED,
                EventState.IN_PROGRESS,
            ] * 5

        async with trio.open_nursery() as nursery:
            for n in range(len(events)):
                nursery.start_soon(journey, n)
            for k in range(6):
                nursery.start_soon(batch, k)

        expected = len(events) * 4 + 6 * 5 * 3
        for store in stores:
            log = await whole_log(store)
            assert len(log) == expected
            assert_one_chain(log)  # one chain: seqs 1..N, no two records after one
            assert await store.audit_head() == ChainHead(expected, log[-1].hash)
            result = await verify_audit(store)
            assert result.intact, result.describe()
            assert result.count == expected
        for event in events:
            actions = [e.action for e in log if e.event_id == event.id]
            assert sorted(actions) == ["agent.connected", "event.accepted", "event.completed"]


# --- edits behind the store's back ------------------------------------------------------------


def edit_sqlite(backend: Backend, seq: int, change: Callable[[dict[str, Any]], object]) -> None:
    assert backend.spec.path is not None
    conn = sqlite3.connect(backend.spec.path)
    try:
        (text,) = conn.execute("SELECT record FROM audit WHERE seq = ?", (seq,)).fetchone()
        data = json.loads(text)
        new = change(data)
        updated = new if isinstance(new, str) else json.dumps(data)
        conn.execute("UPDATE audit SET record = ? WHERE seq = ?", (updated, seq))
        conn.commit()
    finally:
        conn.close()


async def edit_redis(
    backend: Backend, seq: int, change: Callable[[dict[str, Any]], object]
) -> None:
    """Rewrite the stream as someone with write access to Redis would: stream entries cannot
    be changed in place, so read it all, delete it and add every entry again, one changed."""
    assert backend.redis is not None
    async with coredis.Redis.from_url(backend.redis.url, decode_responses=True) as raw:
        key = "transporter:audit"
        entries = await raw.xrange(key)
        await raw.delete([key])
        for item in entries:
            text = item.field_values["entry"]
            if item.identifier == f"{seq}-0":
                data = json.loads(text)
                new = change(data)
                text = new if isinstance(new, str) else json.dumps(data)
            await raw.xadd(key, {"entry": text}, identifier=item.identifier)


async def edit(backend: Backend, seq: int, change: Callable[[dict[str, Any]], object]) -> None:
    """Change the stored JSON of record ``seq``: ``change`` edits the dict in place, or returns
    the text to store instead."""
    if backend.kind == "sqlite":
        edit_sqlite(backend, seq, change)
    else:
        await edit_redis(backend, seq, change)


async def delete(backend: Backend, seq: int) -> None:
    if backend.kind == "sqlite":
        assert backend.spec.path is not None
        conn = sqlite3.connect(backend.spec.path)
        try:
            conn.execute("DELETE FROM audit WHERE seq = ?", (seq,))
            conn.commit()
        finally:
            conn.close()
    else:
        assert backend.redis is not None
        async with coredis.Redis.from_url(backend.redis.url, decode_responses=True) as raw:
            assert await raw.xdel("transporter:audit", [f"{seq}-0"]) == 1


def rehash(data: dict[str, Any]) -> None:
    """Put the right hash for the edited content: what someone who knows the scheme does."""
    entry = AuditEntry(**data)
    data["hash"] = entry_hash(entry)


def forge_detail(data: dict[str, Any]) -> None:
    data["detail"] = "nothing happened here"


def forge_and_rehash(data: dict[str, Any]) -> None:
    forge_detail(data)
    rehash(data)


def swap_agent_and_rehash(data: dict[str, Any]) -> None:
    data["agent_id"] = "someone-else"
    rehash(data)


TAMPERING = {
    # what is done: (the change, to which record, where the chain breaks, why)
    "a field changed": (forge_detail, 5, 5, "does not match its content"),
    "a field changed and its hash recomputed": (forge_and_rehash, 5, 6, "not the hash of seq 5"),
    "the time changed by a microsecond": (
        lambda d: d.update(at=d["at"] + 0.000001),
        5,
        5,
        "does not match its content",
    ),
    "the hash removed": (lambda d: d.update(hash=""), 5, 5, "it has no hash"),
    "the prev_hash changed": (
        lambda d: d.update(prev_hash="0" * 64),
        5,
        5,
        "is not the hash of seq 4",
    ),
    "the seq changed": (
        lambda d: d.update(seq=6),
        5,
        5,
        "the record after seq 4 says seq 6 (seq 5 is missing)",
    ),
    "not JSON any more": (lambda d: "{not json", 5, 5, "it cannot be read"),
    "not an audit entry any more": (lambda d: json.dumps({"x": 1}), 5, 5, "it cannot be read"),
    "the first record changed and rehashed": (forge_and_rehash, 1, 2, "not the hash of seq 1"),
    "the last record changed and rehashed": (
        swap_agent_and_rehash,
        10,
        10,
        "the store's head says its hash is",
    ),
}


@pytest.mark.parametrize("case", TAMPERING)
async def test_an_edited_record_is_found_and_named(backend: Backend, case: str) -> None:
    change, edited, broken_at, why = TAMPERING[case]
    stored = await fill(backend)
    await edit(backend, edited, change)
    async with backend.open() as store:
        result = await verify_audit(store)
        assert not result.intact
        assert result.broken is not None
        assert result.broken.seq == broken_at, result.describe()
        assert why in result.broken.reason, result.describe()
        assert result.count == broken_at - 1
        assert result.head.seq == broken_at - 1
        if broken_at - 1 != edited:
            assert result.head == ChainHead(broken_at - 1, stored[broken_at - 2].hash)
        assert result.describe().startswith(f"audit log broken at seq {broken_at}: ")

        # The control plane goes on appending; the verifier still names the same place.
        await store.audit(audit(50))
        again = await verify_audit(store)
        assert again.broken is not None
        if edited < 10:
            assert again.broken == result.broken
        else:  # the head no longer points at the edited record: the next one does
            assert again.broken.seq == 11
            assert "is not the hash of seq 10" in again.broken.reason


@pytest.mark.parametrize(
    ("removed", "why"),
    [
        (1, "the first record says seq 2 (seq 1 is missing)"),
        (5, "the record after seq 4 says seq 6 (seq 5 is missing)"),
        (10, "missing: the log ends at seq 9 but the store's head is seq 10"),
    ],
)
async def test_a_removed_record_is_found(backend: Backend, removed: int, why: str) -> None:
    await fill(backend)
    await delete(backend, removed)
    async with backend.open() as store:
        result = await verify_audit(store)
        assert result.broken is not None
        assert (result.broken.seq, result.broken.reason) == (removed, why)
        assert result.count == removed - 1
        # Appending after a cut at the end does not hide it: the head still links to seq 10.
        await store.audit(audit(50))
        again = await verify_audit(store)
        assert again.broken is not None
        assert again.broken.seq == removed
        if removed == 10:
            assert again.broken.reason == "the record after seq 9 says seq 11 (seq 10 is missing)"


async def test_two_records_swapped_are_found(backend: Backend) -> None:
    stored = await fill(backend, 6)
    texts = {seq: json.dumps(attrs.asdict(stored[seq - 1])) for seq in (3, 4)}
    await edit(backend, 3, lambda d: texts[4])
    await edit(backend, 4, lambda d: texts[3])
    async with backend.open() as store:
        result = await verify_audit(store)
        assert result.broken is not None
        assert result.broken.seq == 3
        assert result.broken.reason == "the record after seq 2 says seq 4 (seq 3 is missing)"


async def test_a_rewritten_head_is_found(backend: Backend) -> None:
    await fill(backend, 4)
    if backend.kind == "sqlite":
        assert backend.spec.path is not None
        conn = sqlite3.connect(backend.spec.path)
        conn.execute("UPDATE audit_head SET seq = 2")
        conn.commit()
        conn.close()
    else:
        assert backend.redis is not None
        async with coredis.Redis.from_url(backend.redis.url, decode_responses=True) as raw:
            await raw.set("transporter:audit:seq", "2")
    async with backend.open() as store:
        result = await verify_audit(store)
        assert result.broken is not None
        assert result.broken.seq == 3
        assert result.broken.reason == "the store's head is seq 2, but the log goes on to seq 4"


async def test_a_log_rewritten_whole_verifies_but_its_head_differs(backend: Backend) -> None:
    """What a hash chain cannot do alone: someone who rewrites every record, every hash and the
    head after it makes a chain that verifies. Its head differs from the one seen before, which
    is why the verifier prints it: keep it somewhere else and compare."""
    stored = await fill(backend, 5)
    async with backend.open() as store:
        honest = await verify_audit(store)
    assert honest.intact and honest.head == ChainHead(5, stored[-1].hash)
    previous = GENESIS
    for seq in range(1, 6):

        def relink(data: dict[str, Any], seq: int = seq) -> None:
            nonlocal previous
            if seq == 3:
                data["detail"] = "rewritten"
            data["prev_hash"] = previous
            rehash(data)
            previous = data["hash"]

        await edit(backend, seq, relink)
    if backend.kind == "sqlite":
        assert backend.spec.path is not None
        conn = sqlite3.connect(backend.spec.path)
        conn.execute("UPDATE audit_head SET hash = ?", (previous,))
        conn.commit()
        conn.close()
    else:
        assert backend.redis is not None
        async with coredis.Redis.from_url(backend.redis.url, decode_responses=True) as raw:
            await raw.set("transporter:audit:head", previous)
    async with backend.open() as store:
        forged = await verify_audit(store)
    assert forged.intact
    assert forged.head == ChainHead(5, previous) != honest.head


async def test_a_log_verified_while_it_grows_is_intact(backend: Backend) -> None:
    """The verifier beside a running control plane: records appended during the walk are fine."""
    await fill(backend, 20)
    async with backend.open() as writer, backend.open() as reader:
        results = []

        async def append_forever() -> None:
            n = 100
            while True:
                await writer.audit(audit(n))
                n += 1

        async with trio.open_nursery() as nursery:
            nursery.start_soon(append_forever)
            for _ in range(5):
                results.append(await verify_audit(reader, page=7))
            nursery.cancel_scope.cancel()
        for result in results:
            assert result.intact, result.describe()
        counts = [result.count for result in results]
        assert counts == sorted(counts) and counts[-1] > 20  # it grew meanwhile
        assert (await verify_audit(reader)).intact


async def test_a_batch_whose_chain_head_moved_is_written_again_as_a_batch(
    backend: Backend,
) -> None:
    """Another replica's append moves the chain's head under a batch of progress reports:
    every entry of the batch after it fails, and the batch is tried again whole, not one by
    one (with two replicas writing, one-by-one writes halved the events a second)."""
    async with backend.open() as one, backend.open() as two:
        events = [r.event(f"ev-{n}", "agent-1") for n in range(8)]
        await one.submit_many([(e, r.accepted_audit(e)) for e in events])
        await two.audit(audit(99, detail="another replica"))  # one's head is now stale
        singles = 0
        update_event = one.update_event

        async def counted(*args: Any, **kwargs: Any) -> Any:
            nonlocal singles
            singles += 1
            return await update_event(*args, **kwargs)

        one.update_event = counted  # type: ignore[method-assign]
        sent = r.update(EventState.ASSIGNED, r.T0 + 1)
        steps = [
            (e.id, sent, audit(n, action="event.delivered", event_id=e.id))
            for n, e in enumerate(events)
        ]
        updated = await one.update_many(steps)
        assert [u is not None and u.state for u in updated] == [EventState.ASSIGNED] * 8
        assert singles == 0
        assert_one_chain(await whole_log(one))
