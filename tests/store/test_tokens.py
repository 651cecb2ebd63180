"""API tokens in every store: kept, listed, revoked once, each change with its audit entry, and
never the token itself, only its hash."""

from __future__ import annotations

import contextlib
import sqlite3

import attrs
import coredis
import pytest
import trio

from tests.bed import records as r
from tests.bed.store_backends import Backend
from transporter.protocol.model import AuditEntry
from transporter.security.tokens import Role, TokenRecord, new_token
from transporter.store import Store, TokenConflict, verify_audit


def token(
    name: str = "ci-deploy",
    role: Role = Role.SUBMIT,
    agents: tuple[str, ...] = ("team-a-*", "staging"),
    at: float = r.T0,
) -> tuple[str, TokenRecord]:
    return new_token(name=name, role=role, agents=agents, now=at, created_by="cli:alice")


def created(record: TokenRecord) -> AuditEntry:
    return AuditEntry(at=record.created_at, action="token.created", actor="cli:alice")


def revoked(record: TokenRecord, at: float) -> AuditEntry:
    return AuditEntry(at=at, action="token.revoked", actor="cli:bob", detail=record.id)


async def test_a_token_is_kept_with_every_field(store: Store) -> None:
    text, record = token()
    await store.create_token(record, created(record))
    assert await store.get_token(record.id) == record
    stored = await store.get_token(record.id)
    assert stored is not None
    assert stored.matches(text)
    assert not stored.matches(text + "x")
    assert await store.get_token("0123456789ab") is None


async def test_tokens_are_listed_oldest_first_revoked_ones_included(store: Store) -> None:
    made = [token(f"t{n}", at=r.T0 + (5 - n))[1] for n in range(5)]
    for record in made:
        await store.create_token(record, created(record))
    await store.revoke_token(made[2].id, r.T0 + 10, revoked(made[2], r.T0 + 10))
    listed = await store.list_tokens()
    assert [t.name for t in listed] == ["t4", "t3", "t2", "t1", "t0"]
    assert [t.revoked for t in listed] == [False, False, True, False, False]


async def test_a_taken_id_is_a_conflict_and_writes_nothing(store: Store) -> None:
    _, record = token()
    await store.create_token(record, created(record))
    other = attrs.evolve(record, name="someone-else")
    with pytest.raises(TokenConflict) as conflict:
        await store.create_token(other, created(other))
    assert conflict.value.token_id == record.id
    assert await store.list_tokens() == [record]
    assert [e.action for e in (await store.list_audit()).items] == ["token.created"]


async def test_revoking_is_once_and_keeps_the_first_time(store: Store) -> None:
    _, record = token()
    await store.create_token(record, created(record))
    first = await store.revoke_token(record.id, r.T0 + 1, revoked(record, r.T0 + 1))
    assert first == (attrs.evolve(record, revoked_at=r.T0 + 1), True)
    again = await store.revoke_token(record.id, r.T0 + 2, revoked(record, r.T0 + 2))
    assert again == (attrs.evolve(record, revoked_at=r.T0 + 1), False)
    assert await store.get_token(record.id) == attrs.evolve(record, revoked_at=r.T0 + 1)
    assert await store.revoke_token("0123456789ab", r.T0, revoked(record, r.T0)) is None
    actions = [e.action for e in reversed((await store.list_audit()).items)]
    assert actions == ["token.created", "token.revoked"]  # the repeat wrote nothing


async def test_changes_extend_the_audit_chain(store: Store) -> None:
    _, record = token()
    await store.audit(AuditEntry(at=r.T0, action="agent.connected", agent_id="a"))
    await store.create_token(record, created(record))
    await store.revoke_token(record.id, r.T0 + 1, revoked(record, r.T0 + 1))
    entries = await store.audit_after(limit=10)
    assert [(e.seq, e.action, e.actor) for e in entries] == [
        (1, "agent.connected", ""),
        (2, "token.created", "cli:alice"),
        (3, "token.revoked", "cli:bob"),
    ]
    result = await verify_audit(store)
    assert result.intact, result.describe()


async def test_racing_revocations_from_many_stores_let_exactly_one_win(backend: Backend) -> None:
    """Three control planes' stores on the same data revoke one token at once."""
    _, record = token()
    async with backend.open() as one, backend.open() as two, backend.open() as three:
        await one.create_token(record, created(record))
        results: list[bool] = []

        async def revoke(store: Store, n: int) -> None:
            result = await store.revoke_token(record.id, r.T0 + n, revoked(record, r.T0 + n))
            assert result is not None
            results.append(result[1])

        async with trio.open_nursery() as nursery:
            for n, store in enumerate([one, two, three] * 3):
                nursery.start_soon(revoke, store, n)
        assert sorted(results) == [False] * 8 + [True]
        stored = await two.get_token(record.id)
        assert stored is not None and stored.revoked
        audit = await three.audit_after(limit=100)
        assert [e.action for e in audit].count("token.revoked") == 1
        assert (await verify_audit(three)).intact


async def test_a_revocation_is_seen_at_once_by_another_store_on_the_same_data(
    backend: Backend,
) -> None:
    _, record = token()
    async with backend.open() as one, backend.open() as two:
        await one.create_token(record, created(record))
        seen = await two.get_token(record.id)
        assert seen is not None and not seen.revoked
        await one.revoke_token(record.id, r.T0 + 1, revoked(record, r.T0 + 1))
        seen = await two.get_token(record.id)
        assert seen is not None and seen.revoked_at == r.T0 + 1


async def test_tokens_survive_closing_and_opening_again(backend: Backend) -> None:
    _, record = token()
    async with backend.open() as store:
        await store.create_token(record, created(record))
    async with backend.open() as store:
        assert await store.list_tokens() == [record]


async def test_the_token_is_never_stored_only_its_hash(backend: Backend) -> None:
    """Everything the store wrote, read behind its back: the SQLite file and its WAL, or every
    Redis key and value. The token's text and its secret are nowhere; its hash is."""
    text, record = token()
    secret = text.split("_", 2)[2]
    async with backend.open() as store:
        await store.create_token(record, created(record))
        await store.revoke_token(record.id, r.T0 + 1, revoked(record, r.T0 + 1))
        everything = await stored_text(backend)
    assert record.hash in everything  # what was read is the store's data indeed
    assert record.id in everything
    assert text not in everything
    assert secret not in everything
    assert secret[:16] not in everything


async def stored_text(backend: Backend) -> str:
    if backend.kind == "sqlite":
        assert backend.spec.path is not None
        raw = b""
        for suffix in ("", "-wal"):
            path = backend.spec.path.with_name(backend.spec.path.name + suffix)
            if path.exists():
                raw += path.read_bytes()
        # and as rows, whatever the pages hold
        with contextlib.closing(sqlite3.connect(backend.spec.path)) as conn:
            rows = conn.execute("SELECT id, record FROM tokens").fetchall()
            rows += conn.execute("SELECT record FROM audit").fetchall()
        return raw.decode("latin-1") + repr(rows)
    parts: list[str] = []
    async with coredis.Redis.from_url(backend.spec.url, decode_responses=True) as raw_redis:
        for key in await raw_redis.keys("*"):
            parts.append(key)
            kind = await raw_redis.type(key)
            if kind == "string":
                parts.append(str(await raw_redis.get(key)))
            elif kind == "hash":
                parts.append(repr(await raw_redis.hgetall(key)))
            elif kind == "zset":
                parts.append(repr(await raw_redis.zrange(key, 0, -1)))
            elif kind == "stream":
                parts.append(repr([e.field_values for e in await raw_redis.xrange(key)]))
            else:
                raise AssertionError(f"a key of type {kind} to read: {key}")
    return "\n".join(parts)
