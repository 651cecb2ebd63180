"""After a write's ``WAIT`` behind Sentinels: do the Sentinels still name the server that took
the write, with no failover under way? Asked of every Sentinel, in rounds shared by the writes
that wait for one.

Why the ``WAIT`` alone is not enough: in a failover the Sentinel leading it sends the chosen
replica ``REPLICAOF NO ONE``, waits until it reports itself a primary, and only then moves the
other replicas to it, one by one. Meanwhile the old primary still takes writes, and the replicas
not moved yet confirm them; once moved, their sync with the new primary drops them. How many
replicas a write waits for is counted from a Sentinel's view, which lags (it reads each
replica's ``INFO`` every 10 s, every second in a failover, and the Sentinels learn a switch
from each other): a count taken at the wrong moment let the other replica alone confirm the
old primary's writes (tests/e2e/test_sentinel_failover.py, seen in CI).

So once a write is confirmed, a round of questions that *began after the confirmation* must
find the write's server still named the primary by every Sentinel that answers (a majority
of them at least), and none of them leading a failover (``failover_in_progress``) or agreeing
that the primary is down (``o_down``: a failover is about to start). A failover that started
before the confirmation is then seen: its leader flags it until the switch, and names the new
primary after it. One that starts after the confirmation started from replicas that all had
the write (the count included every replica in step). Else the write's outcome is unknown:
``StoreUnavailable``, which the producer retries with the same event id.

What remains: a Sentinel that cannot be reached may be leading a failover of its own (an
operator's ``SENTINEL FAILOVER`` sent to it alone); a majority must answer, not all, so that
one Sentinel down does not stop every write.
"""

from __future__ import annotations

import contextlib
from typing import Any

import attrs
import coredis
import trio
from coredis.typing import RedisError

ANSWER_WITHIN = 2.0
"""Seconds a Sentinel has to answer a round; one that takes longer counts as not answering."""
_FAILING_OVER = frozenset({"failover_in_progress", "o_down"})


@attrs.frozen
class Named:
    """What a round found: the primary every answering Sentinel names (``host:port``), or
    ``None`` and why no write can be confirmed now."""

    primary: str | None
    why: str = ""


async def ask_sentinels(sentinel: coredis.Sentinel[str], service: str) -> Named:
    """One round: ``SENTINEL MASTER service`` of every Sentinel at once."""
    answers: list[dict[str, Any]] = []

    async def ask(each: coredis.Redis[str]) -> None:
        with trio.move_on_after(ANSWER_WITHIN):
            with contextlib.suppress(RedisError, OSError):  # counted as not answering
                answers.append(dict(await each.sentinel_master(service)))

    async with trio.open_nursery() as nursery:
        for each in sentinel.sentinels:
            nursery.start_soon(ask, each)
    return verdict(answers, len(sentinel.sentinels))


def verdict(answers: list[dict[str, Any]], sentinels: int) -> Named:
    """The :class:`Named` of the ``SENTINEL MASTER`` ``answers`` of ``sentinels`` asked."""
    need = sentinels // 2 + 1
    if len(answers) < need:
        return Named(None, f"{len(answers)} of {sentinels} Sentinels answered ({need} needed)")
    named = sorted({f"{each.get('ip')}:{each.get('port')}" for each in answers})
    if len(named) > 1:
        return Named(None, f"the Sentinels name different primaries ({', '.join(named)})")
    for each in answers:
        flags = set(str(each.get("flags", "")).split(","))
        if flags & _FAILING_OVER:
            return Named(None, f"a Sentinel is failing {named[0]} over ({each.get('flags')})")
    return Named(named[0])


__all__ = ["ANSWER_WITHIN", "Named", "ask_sentinels", "verdict"]
