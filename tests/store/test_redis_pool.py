"""The Redis store's connection pool keeps its places (store/redis/pool_slots.py): a connection
that dies while a call holds it, and one that cannot be made because no Sentinel names a
primary, each give their place back. coredis's pool lost one each time; once all 64 were lost,
every call waited forever (a double failover in CI: "Redis did not answer within 10 s" until
the control plane was restarted). So do connections closed under their callers (the pool's
disconnect) and connections that die while in the pool. A caller that gave up waiting for a
place does not take the wake-up of the next one, and the pool can drop its connections to all
servers but one. Real redis-servers and Sentinels."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager as AsyncContextManager
from pathlib import Path

import pytest
import trio
import trio.testing
from coredis.connection import TCPLocation
from coredis.exceptions import ConnectionError as ConnectionLost

from tests.bed.redis import RedisServer
from tests.bed.sentinel import SERVICE, running_sentinels
from transporter.store.redis.failover import FailoverRedis, NotSent, plain_client, sentinel_client
from transporter.store.redis.pool_slots import KeptPlaces

pytestmark = pytest.mark.redis

CALL_TIMEOUT = 5.0
BLOCKED_WITHIN = 10.0
POLL = 0.01
"""Seconds between two questions to the server about a call it has not received yet."""


def options() -> dict[str, object]:
    """The store's timeouts, in a dict of the caller's own (coredis adds to what it is given)."""
    return {"connect_timeout": CALL_TIMEOUT, "stream_timeout": CALL_TIMEOUT}


def client_of(
    server: RedisServer, *, places: int | None = None
) -> AsyncContextManager[FailoverRedis]:
    """The store's client of ``server`` (its pool of ``places``, else coredis's 64)."""
    sized = {} if places is None else {"max_connections": places}
    return plain_client(server.url, options() | sized, CALL_TIMEOUT)


async def held_in_wait(client: FailoverRedis) -> None:
    """A pipeline that holds its connection in a ``WAIT`` no replica answers, until the server
    drops it."""
    with trio.fail_after(BLOCKED_WITHIN), pytest.raises(ConnectionLost):
        async with client.pipeline(transaction=False) as pipe:
            pipe.wait(1, 0)


async def blocked_in_wait(watcher: FailoverRedis) -> int:
    """The id of the client in a ``WAIT`` on the server, once there is one (asked: the server
    says so only then)."""
    with trio.fail_after(BLOCKED_WITHIN):
        while True:
            waiting = [c for c in await watcher.client_list() if c.get("cmd") == "wait"]
            if waiting:
                return int(waiting[0]["id"])
            await trio.sleep(POLL)


async def test_connections_that_die_while_in_use_give_their_places_back(
    redis_server: RedisServer,
) -> None:
    async with (
        client_of(redis_server) as client,
        client_of(redis_server) as killer,
    ):
        places = client.connection_pool.max_connections
        for _ in range(places + 4):  # more than the pool has
            async with trio.open_nursery() as nursery:
                nursery.start_soon(held_in_wait, client)
                await killer.client_kill(identifier=await blocked_in_wait(killer))
        with trio.fail_after(CALL_TIMEOUT):
            assert await client.set("still", "answers")
            assert await client.get("still") == "answers"


async def test_connections_no_sentinel_names_a_primary_for_give_their_places_back(
    tmp_path: Path,
) -> None:
    with running_sentinels(tmp_path / "redis") as bed:
        sentinels = [TCPLocation("127.0.0.1", node.port) for node in bed.sentinels]
        primary = bed.primary()
        async with sentinel_client(
            sentinels,
            SERVICE,
            sentinel_options=options(),
            options=options(),
            call_timeout=CALL_TIMEOUT,
        ) as client:
            for sentinel in bed.sentinels:
                assert sentinel.command("SENTINEL", "REMOVE", SERVICE) == "OK"
            pool = client.connection_pool
            for _ in range(pool.max_connections + 4):  # more than the pool has
                with trio.fail_after(CALL_TIMEOUT), pytest.raises(NotSent, match="No primary"):
                    await pool.get_connection()
            for sentinel in bed.sentinels:
                monitor = ("SENTINEL", "MONITOR", SERVICE, "127.0.0.1", str(primary.port), "2")
                assert sentinel.command(*monitor) == "OK"
            with trio.fail_after(CALL_TIMEOUT):
                assert await client.set("still", "answers")
                assert await client.get("still") == "answers"


async def test_a_caller_that_gave_up_waiting_for_a_place_leaves_the_next_one_its_turn(
    redis_server: RedisServer,
) -> None:
    async with (
        client_of(redis_server, places=1) as client,
        client_of(redis_server) as killer,
    ):
        pool = client.connection_pool
        async with trio.open_nursery() as nursery:
            nursery.start_soon(held_in_wait, client)  # the only place, held
            held = await blocked_in_wait(killer)
            gave_up = trio.CancelScope()

            async def waits_then_gives_up() -> None:
                with gave_up:
                    await pool.get_connection()

            nursery.start_soon(waits_then_gives_up)
            await trio.testing.wait_all_tasks_blocked()
            gave_up.cancel()  # as a call's timeout would
            answered: list[str | None] = []

            async def waits_its_turn() -> None:
                with trio.fail_after(CALL_TIMEOUT):
                    answered.append(await client.get("nothing"))

            nursery.start_soon(waits_its_turn)
            await trio.testing.wait_all_tasks_blocked()
            await killer.client_kill(identifier=held)  # the place comes back
        assert answered == [None]


async def test_the_pool_drops_its_connections_to_other_servers_only(
    redis_server: RedisServer,
) -> None:
    async with client_of(redis_server) as client:
        pool = client.connection_pool
        assert isinstance(pool, KeptPlaces)
        assert await client.set("here", "1")
        [connection] = list(pool._online_connections)
        pool.keep_only(str(connection.location))
        assert connection.usable
        pool.keep_only("127.0.0.1:1")  # another server: the connection goes
        with trio.fail_after(CALL_TIMEOUT):
            while connection.usable:
                await trio.testing.wait_all_tasks_blocked()
        with trio.fail_after(CALL_TIMEOUT):
            assert await client.get("here") == "1"  # on a new connection
        assert connection not in pool._online_connections


async def test_a_connection_that_dies_in_the_pool_gives_its_place_back(
    redis_server: RedisServer,
) -> None:
    async with (
        client_of(redis_server, places=1) as client,
        client_of(redis_server) as killer,
    ):
        pool = client.connection_pool
        own = await client.client_id()  # on the only connection, idle in the pool after
        [connection] = list(pool._online_connections)
        await killer.client_kill(identifier=own)
        with trio.fail_after(CALL_TIMEOUT):
            while connection in pool._online_connections:  # until its reader sees the end
                await trio.testing.wait_all_tasks_blocked()
            assert await client.set("still", "answers")


async def test_connections_closed_under_their_callers_give_their_places_back(
    redis_server: RedisServer,
) -> None:
    async with (
        client_of(redis_server, places=1) as client,
        client_of(redis_server) as watcher,
    ):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(held_in_wait, client)  # the only place, held
            await blocked_in_wait(watcher)
            client.connection_pool.disconnect()  # as a failover's move to the new primary
        with trio.fail_after(CALL_TIMEOUT):
            assert await client.set("still", "answers")
