"""The producer's appender through a real Sentinel bed (a primary, two replicas, three
Sentinels), as the README's ACL user: an entry is answered once every replica has it (XADD and
WAIT on one connection: no PUBLISH needed); when its confirmation fails, the outcome is said to
be unknown (the XADD ran), with no field of the entry, the token least of all, in the error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bed.queue import QUEUE
from tests.bed.sentinel import SERVICE, SentinelBed, running_sentinels
from transporter.store.redis.queue_append import OutcomeUnknown, open_appender

pytestmark = pytest.mark.redis

PRODUCER = ("resetkeys", "~transporter:queue", "-@all", "+xadd", "+xlen", "+ping", "+role", "+wait")
"""The README's producer user (ACL users are not replicated: it is on every server)."""
TOKEN = "tpt_0123456789ab_" + "s" * 43


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelBed]:
    with running_sentinels(tmp_path_factory.mktemp("sentinels")) as bed:
        for node in bed.servers:
            assert node.command("ACL", "SETUSER", "qproducer", "on", ">pw", *PRODUCER) == "OK"
            no_wait = [r for r in PRODUCER if r != "+wait"]
            assert node.command("ACL", "SETUSER", "nowait", "on", ">pw", *no_wait) == "OK"
        yield bed


def producer_url(bed: SentinelBed, user: str) -> str:
    hosts = ",".join(f"127.0.0.1:{node.port}" for node in bed.sentinels)
    return f"redis+sentinel://{user}:pw@{hosts}/{SERVICE}"


def lengths(bed: SentinelBed) -> list[object]:
    return [node.command("XLEN", QUEUE) for node in bed.servers]


async def test_an_entry_is_answered_once_every_replica_has_it(bed: SentinelBed) -> None:
    before = lengths(bed)
    async with open_appender(producer_url(bed, "qproducer")) as appender:
        assert await appender.append({"v": "1", "body": "{}", "token": TOKEN})
    after = lengths(bed)
    assert after == [int(str(n)) + 1 for n in before] and len(set(after)) == 1


async def test_an_unconfirmed_append_is_an_unknown_outcome_without_the_token(
    bed: SentinelBed, tmp_path: Path
) -> None:
    before = lengths(bed)
    async with open_appender(producer_url(bed, "nowait")) as appender:
        with pytest.raises(OutcomeUnknown) as raised:
            await appender.append({"v": "1", "body": '{"id": "e-1"}', "token": TOKEN})
    said = str(raised.value)
    assert "permissions" in said and "wait" in said
    assert TOKEN not in said and "e-1" not in said
    assert int(str(bed.primary().command("XLEN", QUEUE))) == int(str(before[0])) + 1  # it ran
