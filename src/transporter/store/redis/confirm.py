"""When a write to Redis counts as kept: once the replicas the URL asks for have it (``WAIT``),
and behind Sentinels once they, asked after that, still name its server the primary with no
failover under way (:mod:`~transporter.store.redis.named_primary` says why both are needed)."""

from __future__ import annotations

from typing import Any

import trio

from transporter.config.redis_url import Replication
from transporter.store.base import StoreUnavailable
from transporter.store.redis.failover import RETRY_FIRST, RETRY_MOST, Writes, last_server
from transporter.store.redis.keys import Keys
from transporter.store.redis.named_primary import Named

RECOUNT = 1.0
"""Seconds for which the number of replicas the Sentinels see up is taken as it was counted (one
question to a Sentinel per second at most, not one per write)."""


class Confirming:
    """The confirmation of the writes of one store's client."""

    def __init__(
        self, client: Any, replication: Replication, keys: Keys, *, patience: float
    ) -> None:
        self._client = client
        self._replication = replication
        """How many replicas each write waits for (the URL's ``wait_replicas``)."""
        self._keys = keys
        self._patience = patience
        """Seconds a confirmed write waits for a failover under way to end (see :meth:`named`)."""
        self._replicas_up = 0
        self._counted_at = -RECOUNT

    async def confirm(self, writes: Writes) -> None:
        """Wait until ``wait_replicas`` replicas have everything the primary has written so
        far, this operation's ``writes`` included, or raise :class:`StoreUnavailable` (outcome
        unknown).

        ``WAIT`` counts the replicas that have the last write of *its own connection*: an
        empty ``PUBLISH`` before it, on the same connection (one pipeline), makes that the
        primary's latest offset. So a write that found its work already done (an event
        submitted again after a 503) also waits for the first attempt's write to be copied.
        That connection may not be the writes' (the pool's connections are shared), and after
        a failover it may lead to the new primary, whose replicas would confirm its offset, not
        the writes': so the ``WAIT`` counts only when its server is the one that answered every
        write of the operation (by address; the pool's connections move only between
        addresses). Behind Sentinels it counts once they, asked after it, still name that
        server the primary with no failover under way (:meth:`named`)."""
        wanted = await self.wanted()
        if wanted == 0:
            return
        timeout_ms = self._replication.wait_timeout_ms
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.publish(self._keys.prefix + "replicated", "")
            acked = pipe.wait(wanted, timeout_ms)
        count = await acked
        server = last_server()
        elsewhere = sorted(writes.servers - {server or ""})
        if elsewhere:
            raise StoreUnavailable(
                f"Redis: the primary changed during the write ({', '.join(elsewhere)} took it,"
                f" {server} was asked to confirm it); its outcome is unknown"
            )
        if count < wanted:
            await self.named(server, patient=False)  # to move to a new primary, if there is one
            raise StoreUnavailable(
                f"Redis: {count} of {wanted} replica(s) had the write after {timeout_ms} ms;"
                " its outcome is unknown"
            )
        refusal = await self.refusal(server)
        if refusal is not None:
            raise StoreUnavailable(f"Redis: {refusal}; the write's outcome is unknown")

    async def refusal(self, server: str | None) -> str | None:
        """Why a write ``server`` confirmed does not count, behind Sentinels; else ``None``."""
        named = await self.named(server, patient=True)
        if named is None or named.primary == server:
            return None
        return named.why or f"the Sentinels name {named.primary} the primary, not {server}"

    async def named(self, server: str | None, *, patient: bool) -> Named | None:
        """Behind Sentinels, what they say of the primary, asked now (``None`` without them).
        When they name another one than ``server``, the pool's connections to other servers
        go, so that the next call is made to it, not to the old primary until that one is made
        a replica. Those to it stay: closed again and again, they cut the store's feed every
        few writes in a failover (seen in CI).

        ``patient``: while a failover is under way (or the Sentinels disagree, or too few
        answer), ask again for up to :attr:`_patience` seconds: a failover that is aborted
        leaves ``server`` the primary with the write on its replicas, confirmed; one that
        switches names another, refused."""
        ask = getattr(self._client, "primary_named", None)
        if ask is None:
            return None
        named: Named = await ask()
        if patient:
            pause = RETRY_FIRST
            with trio.move_on_after(self._patience):
                while named.primary is None:
                    await trio.sleep(pause)
                    pause = min(pause * 2, RETRY_MOST)
                    named = await ask()
        if named.primary is not None and named.primary != server:
            self._client.connection_pool.keep_only(named.primary)
        return named

    async def wanted(self) -> int:
        """``wait_replicas``, or with ``wait_replicas=all`` the replicas the Sentinels see up
        (:attr:`~transporter.config.redis_url.Replication.wait_all` says why), at least 1."""
        least = self._replication.wait_replicas
        count = getattr(self._client, "count_replicas", None)
        if not self._replication.wait_all or count is None:
            return least
        if trio.current_time() - self._counted_at >= RECOUNT:
            self._replicas_up = await count()
            self._counted_at = trio.current_time()
        return max(least, self._replicas_up)


__all__ = ["RECOUNT", "Confirming"]
