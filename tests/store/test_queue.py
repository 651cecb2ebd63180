"""The queue's part of the store on a real redis-server: entries read once through the group,
claimed from a consumer that left them unsettled, settled atomically (acknowledged and deleted;
or dead-lettered, once however many settle it), dead letters paged and filtered by token; the
producer's appender refuses a full queue instead of trimming it, and works as a Redis user that
may only XADD and XLEN the queue key. The embedded store says queue mode needs Redis."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
import trio

from tests.bed.queue import DEAD, QUEUE, redis_cli
from tests.bed.redis import RedisServer
from tests.bed.store_backends import Backend
from transporter.config.store_spec import StoreSpec
from transporter.store import StoreUnavailable
from transporter.store.base import InvalidCursor, QueueUnsupported
from transporter.store.queue_store import DeadLetter
from transporter.store.redis import RedisStore, queue_append
from transporter.store.redis.queue_append import QueueFull, open_appender


def letter(entry_id: str, token_id: str | None = None) -> DeadLetter:
    return DeadLetter(
        entry_id=entry_id, at=1.5, status=403, error="forbidden", message="no", token_id=token_id
    )


@pytest.mark.redis
async def test_entries_go_once_and_are_claimed_from_a_silent_consumer(
    redis_server: RedisServer,
) -> None:
    async with open_appender(redis_server.url) as appender:
        first = await appender.append({"v": "1", "body": "{}", "token": "t"})
        second = await appender.append({"v": "1", "body": "[]", "token": "t"})
    async with RedisStore.open(redis_server.url) as store:
        await store.queue_prepare()
        await store.queue_prepare()  # again: the group is there
        read = await store.queue_read("one", count=10, block=0.05)
        assert [e.entry_id for e in read] == [first, second]
        assert read[0].fields == {"v": "1", "body": "{}", "token": "t"}
        assert await store.queue_read("two", count=10, block=0.05) == []  # given to one only
        assert await store.queue_claim("two", idle=60, count=10) == []  # not idle long enough
        claimed = await store.queue_claim("two", idle=0, count=10)
        assert [e.entry_id for e in claimed] == [first, second]
        await store.queue_done(first)
        await store.queue_dead(second, letter(second, "abc"))
        await store.queue_dead(second, letter(second, "abc"))  # settled already: no 2nd letter
        assert redis_cli(redis_server, "XLEN", QUEUE) == "0"  # deleted: no token lingers
        assert redis_cli(redis_server, "XLEN", DEAD) == "1"
        assert redis_cli(redis_server, "XPENDING", QUEUE, "cp").splitlines()[0] == "0"
        (found,) = (await store.dead_letters()).items
        assert found.entry_id == second and found.token_id == "abc" and found.status == 403


@pytest.mark.redis
async def test_an_entry_that_is_not_utf8_is_read_with_replacements(
    redis_server: RedisServer,
) -> None:
    """Any producer may append any bytes: such an entry is read (and refused for its content
    by the control plane), never an error that would stop the reads and claims behind it."""
    async with RedisStore.open(redis_server.url) as store:
        await store.queue_prepare()
        command = b'XADD transporter:queue * v 1 body "\xff{" token x\r\n'
        await trio.run_process(
            ["redis-cli", "-p", str(redis_server.port)], stdin=command, capture_stdout=True
        )
        (read,) = await store.queue_read("c", count=10, block=0.05)
        assert read.fields["body"] == "\ufffd{"
        (claimed,) = await store.queue_claim("d", idle=0, count=10)
        assert claimed.fields == read.fields


@pytest.mark.redis
async def test_claims_count_deliveries_and_letters_are_found_by_entry(
    redis_server: RedisServer,
) -> None:
    """A claimed entry says how often it was given out (so one that keeps failing is given up
    on); a letter is found by its entry's id, for its token only; any text is written as valid
    UTF-8 (a lone surrogate would fail the write)."""
    async with RedisStore.open(redis_server.url) as store:
        await store.queue_prepare()
        async with open_appender(redis_server.url) as appender:
            first = await appender.append({"v": "1"})
            second = await appender.append({"v": "1"})
        assert [e.deliveries for e in await store.queue_read("a", count=10, block=0.05)] == [1, 1]
        for n in (2, 3):
            claimed = await store.queue_claim("b", idle=0, count=10)
            assert [(e.entry_id, e.deliveries) for e in claimed] == [(first, n), (second, n)]
        hostile = attrs.evolve(letter(first, "mine"), event_id="\ud800", message="a\udfffb")
        await store.queue_dead(first, hostile)
        found = await store.dead_letter_of(first)
        assert found is not None and (found.event_id, found.message) == ("?", "a?b")
        assert await store.dead_letter_of(first, token_id="mine") == found
        assert await store.dead_letter_of(first, token_id="other") is None
        assert await store.dead_letter_of(second) is None
        with pytest.raises(InvalidCursor):
            await store.dead_letter_of("nope")


@pytest.mark.redis
async def test_dead_letters_page_newest_first_and_by_token(redis_server: RedisServer) -> None:
    async with RedisStore.open(redis_server.url) as store:
        await store.queue_prepare()
        async with open_appender(redis_server.url) as appender:
            ids = [await appender.append({"v": "1"}) for _ in range(7)]
        await store.queue_read("c", count=10, block=0.05)
        for n, entry_id in enumerate(ids):
            await store.queue_dead(entry_id, letter(entry_id, "mine" if n % 2 else "other"))
        seen, cursor = [], None
        while True:
            page = await store.dead_letters(limit=3, cursor=cursor)
            seen += [item.entry_id for item in page.items]
            if page.cursor is None:
                break
            cursor = page.cursor
        assert seen == ids[::-1]
        mine = await store.dead_letters(limit=2, token_id="mine")
        assert [item.entry_id for item in mine.items] == [ids[5], ids[3]]
        rest = await store.dead_letters(limit=2, token_id="mine", cursor=mine.cursor)
        assert [item.entry_id for item in rest.items] == [ids[1]]
        assert rest.cursor is None


@pytest.mark.redis
async def test_a_full_queue_refuses_rather_than_trims(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(queue_append, "MAX_WAITING", 2)
    async with open_appender(redis_server.url) as appender:
        await appender.append({"v": "1"})
        await appender.append({"v": "1"})
        with pytest.raises(QueueFull, match="is a control plane running"):
            await appender.append({"v": "1"})
    assert redis_cli(redis_server, "XLEN", QUEUE) == "2"


@pytest.mark.redis
async def test_a_producer_user_may_only_append(redis_server: RedisServer) -> None:
    """The README's ACL user: XADD and XLEN on the queue key, nothing else."""
    redis_cli(
        redis_server, "ACL", "SETUSER", "qproducer", "on", ">pw", "resetkeys", "~transporter:queue",
        "-@all", "+xadd", "+xlen", "+ping",
    )  # fmt: skip
    url = f"redis://qproducer:pw@127.0.0.1:{redis_server.port}/0"
    async with open_appender(url) as appender:
        assert await appender.append({"v": "1", "body": "{}", "token": "t"})
    async with open_appender(url, prefix="elsewhere:") as appender:
        with pytest.raises(StoreUnavailable, match="permissions"):
            await appender.append({"v": "1"})
    async with RedisStore.open(url) as store:  # the store's keys, tokens included: refused
        with pytest.raises(StoreUnavailable):
            await store.list_tokens()
        with pytest.raises(StoreUnavailable):
            await store.queue_read("thief", count=1, block=0.05)


async def test_the_embedded_store_has_no_queue(tmp_path: Path) -> None:
    backend = Backend("sqlite", StoreSpec.parse(f"sqlite://{tmp_path}/transporter.db"))
    async with backend.open() as store:
        with pytest.raises(QueueUnsupported, match="queue mode needs the Redis store"):
            await store.queue_prepare()
        with pytest.raises(QueueUnsupported):
            await store.dead_letters()


@pytest.mark.redis
async def test_consumers_gone_are_forgotten_but_not_those_holding_entries(
    redis_server: RedisServer,
) -> None:
    async with RedisStore.open(redis_server.url) as store:
        await store.queue_prepare()
        async with open_appender(redis_server.url) as appender:
            await appender.append({"v": "1"})
            assert len(await store.queue_read("holder", count=1, block=0.05)) == 1
            await appender.append({"v": "1"})
            (done,) = await store.queue_read("gone", count=1, block=0.05)
        await store.queue_done(done.entry_id)
        assert await store.queue_forget(idle=3600) == 0  # neither idle long enough
        assert await store.queue_forget(idle=0) == 1  # "gone"; "holder" holds an entry
        names = redis_cli(redis_server, "XINFO", "CONSUMERS", QUEUE, "cp")
        assert "holder" in names and "gone" not in names
