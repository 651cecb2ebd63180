"""put_agents, in every store: many agents' records and audit entries in one write (a reconnect
storm's registrations), the entries extending the one audit chain, also when another writer of
the store (another replica) appended in between."""

from __future__ import annotations

import trio

from tests.bed import records as r
from tests.bed.store_backends import Backend
from transporter.protocol.model import AgentStatus, AuditEntry
from transporter.store import Store, verify_audit


def connected(n: int) -> AuditEntry:
    return AuditEntry(at=r.T0 + n, action="agent.connected", agent_id=f"agent-{n:04d}")


async def test_many_records_and_entries_are_stored_in_order(store: Store) -> None:
    before = await store.audit(AuditEntry(at=r.T0, action="x"))
    records = [r.agent(f"agent-{n:04d}") for n in range(500)]
    await store.put_agents(records, [connected(n) for n in range(500)])
    assert await store.list_agents() == records
    entries = await store.audit_after(before.seq, limit=1000)
    assert [(e.action, e.agent_id) for e in entries] == [
        ("agent.connected", f"agent-{n:04d}") for n in range(500)
    ]
    assert [e.seq for e in entries] == list(range(before.seq + 1, before.seq + 501))
    result = await verify_audit(store)
    assert result.intact, result.describe()


async def test_a_later_record_of_an_agent_wins_and_nothing_is_a_no_op(store: Store) -> None:
    await store.put_agents([])
    await store.put_agents([], [])
    assert await store.list_agents() == []
    gone = r.agent("a", AgentStatus.DISCONNECTED)
    await store.put_agents([r.agent("a"), r.agent("b"), gone])
    assert await store.list_agents() == [gone, r.agent("b")]
    assert await store.audit_after(0) == []


async def test_entries_alone_are_appended(store: Store) -> None:
    await store.put_agents([], [connected(1), connected(2)])
    assert [e.seq for e in await store.audit_after(0)] == [1, 2]


async def test_writers_of_one_store_in_turn_keep_one_chain(backend: Backend) -> None:
    """Two openings of one store (two replicas' connections) appending at once: the chain's
    head moves under each, and every entry is in it once."""
    async with backend.open() as one, backend.open() as two:

        async def registrations(store: Store, name: str) -> None:
            for k in range(10):
                ids = [f"{name}-{k}-{n}" for n in range(20)]
                await store.put_agents(
                    [r.agent(agent_id) for agent_id in ids],
                    [AuditEntry(at=r.T0, action="agent.connected", agent_id=i) for i in ids],
                )

        async def audits(store: Store) -> None:
            for n in range(50):
                await store.audit(AuditEntry(at=r.T0, action="x", detail=str(n)))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(registrations, one, "one")
            nursery.start_soon(registrations, two, "two")
            nursery.start_soon(audits, two)
        assert len(await one.list_agents()) == 400
        result = await verify_audit(one)
        assert result.intact, result.describe()
        assert result.count == 450
