"""Registrations as a group commit (:class:`~transporter.cp.roster.Arrivals`): the agents
arriving together are stored by one write each batch, every one's record durable before it
returns; an arrival that gives up before its write is not written, a failed write fails each
of its batch. On the real SQLite store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import trio
import trio.testing

from tests.bed import records as r
from transporter.config.store_spec import StoreSpec
from transporter.cp.live import Connection
from transporter.cp.roster import Arrivals, heard_again, save_status
from transporter.protocol.model import AgentInfo, AgentRecord, AgentStatus, AuditEntry
from transporter.store import Store, StoreUnavailable, open_store


def arrival(n: int) -> tuple[str, AuditEntry]:
    agent_id = f"agent-{n:04d}"
    return agent_id, AuditEntry(at=r.T0, action="agent.connected", agent_id=agent_id)


async def test_agents_arriving_together_share_few_writes(tmp_path: Path) -> None:
    async with open_store(StoreSpec.sqlite_in(tmp_path)) as store:
        arrivals = Arrivals(store, max_batch=100)
        durable: list[str] = []

        async def arrive(n: int) -> None:
            agent_id, audit = arrival(n)
            await arrivals.store_arrival(r.agent(agent_id), audit)
            assert await store.get_agent(agent_id) == r.agent(agent_id)  # durable already
            durable.append(agent_id)

        async with trio.open_nursery() as nursery:
            for n in range(1000):
                nursery.start_soon(arrive, n)
        assert sorted(durable) == [f"agent-{n:04d}" for n in range(1000)]
        assert 10 <= arrivals.writes < 100  # batches of up to 100, not one write each
        entries = await store.audit_after(0, limit=1000)
        assert sorted(e.agent_id or "" for e in entries) == sorted(durable)


class Gated:
    """The real store, whose writes of agents wait until :attr:`gate` is set."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.gate = trio.Event()
        self.on_write: Callable[[], object] = lambda: None
        """Called as each write ends (before it returns)."""

    async def put_agents(self, records: list[AgentRecord], audits: list[AuditEntry]) -> None:
        await self.gate.wait()
        await self.store.put_agents(records, audits)
        self.on_write()


async def test_an_arrival_cancelled_while_waiting_is_not_written(tmp_path: Path) -> None:
    async with open_store(StoreSpec.sqlite_in(tmp_path)) as store:
        gated = Gated(store)
        arrivals = Arrivals(gated)  # type: ignore[arg-type]
        async with trio.open_nursery() as nursery:
            for n in range(3):
                nursery.start_soon(arrivals.store_arrival, r.agent(f"a{n}"), arrival(n)[1])
            await trio.testing.wait_all_tasks_blocked()  # a0 is being written, a1, a2 wait
            waiting = trio.CancelScope()

            async def give_up() -> None:
                with waiting:
                    await arrivals.store_arrival(r.agent("quitter"), arrival(8)[1])

            nursery.start_soon(give_up)
            await trio.testing.wait_all_tasks_blocked()
            waiting.cancel()  # it waited behind a0's write, and gives up
            await trio.testing.wait_all_tasks_blocked()
            gated.gate.set()
        ids = [a.info.id for a in await store.list_agents()]
        assert ids == ["a0", "a1", "a2"]


async def test_the_turn_to_write_passes_on_when_the_one_given_it_gives_up(
    tmp_path: Path,
) -> None:
    async with open_store(StoreSpec.sqlite_in(tmp_path)) as store:
        gated = Gated(store)
        arrivals = Arrivals(gated, max_batch=1)  # type: ignore[arg-type]
        quitting = trio.CancelScope()
        written: list[str] = []

        async def arrive(agent_id: str, scope: trio.CancelScope | None = None) -> None:
            with scope or trio.CancelScope():
                await arrivals.store_arrival(r.agent(agent_id), arrival(0)[1])
                written.append(agent_id)

        with trio.fail_after(10):  # a turn lost leaves the last waiting forever
            async with trio.open_nursery() as nursery:
                nursery.start_soon(arrive, "first")
                await trio.testing.wait_all_tasks_blocked()  # first's write waits at the gate
                nursery.start_soon(arrive, "quitter", quitting)  # the next turn is its
                await trio.testing.wait_all_tasks_blocked()
                nursery.start_soon(arrive, "last")
                await trio.testing.wait_all_tasks_blocked()
                # The quitter gives up just as first's write ends and hands it the next turn.
                gated.on_write = quitting.cancel
                gated.gate.set()
        assert written == ["first", "last"]  # the turn went on to the last: none stuck
        assert [a.info.id for a in await store.list_agents()] == ["first", "last"]


async def test_an_arrival_already_cancelled_is_not_written(tmp_path: Path) -> None:
    async with open_store(StoreSpec.sqlite_in(tmp_path)) as store:
        arrivals = Arrivals(store)
        with trio.CancelScope() as gone:
            gone.cancel()
            await arrivals.store_arrival(r.agent("gone"), arrival(9)[1])
        assert await store.list_agents() == []


class Broken:
    """A store whose writes of agents fail as an outage does."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def put_agents(self, records: object, audits: object = ()) -> None:
        await trio.lowlevel.checkpoint()
        raise StoreUnavailable("the store is down")


async def test_a_failed_write_fails_each_arrival_of_its_batch(tmp_path: Path) -> None:
    async with open_store(StoreSpec.sqlite_in(tmp_path)) as store:
        arrivals = Arrivals(Broken(store))  # type: ignore[arg-type]
        failed: list[str] = []

        async def arrive(n: int) -> None:
            with pytest.raises(StoreUnavailable, match="down"):
                await arrivals.store_arrival(r.agent(f"a{n}", AgentStatus.CONNECTED), arrival(n)[1])
            failed.append(f"a{n}")

        async with trio.open_nursery() as nursery:
            for n in range(5):
                nursery.start_soon(arrive, n)
        assert sorted(failed) == [f"a{n}" for n in range(5)]


async def test_an_agent_heard_again_stays_connected_when_its_status_is_not_saved(
    tmp_path: Path,
) -> None:
    async with open_store(StoreSpec.sqlite_in(tmp_path)) as store:
        arrivals = Arrivals(Broken(store))  # type: ignore[arg-type]

        async def sender(text: str) -> None:
            raise AssertionError("nothing is sent")  # pragma: no cover

        connection = Connection(
            info=AgentInfo("a"),
            connected_since=r.T0,
            sender=sender,
            cancel_scope=trio.CancelScope(),
            last_heard=r.T0,
            status=AgentStatus.UNHEALTHY,
        )
        await heard_again(arrivals, connection)  # the outage is logged, not raised
        assert connection.status is AgentStatus.CONNECTED
        with pytest.raises(StoreUnavailable):
            await save_status(arrivals, connection)
