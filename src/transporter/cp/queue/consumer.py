"""The queue's consumer: this replica's member of the consumer group ``cp``.

Two tasks: one reads new entries (XREADGROUP, blocking a little while, never longer than the
store's call timeout), one claims entries another consumer (a replica that died, or this one
when its store failed) has held unsettled for :attr:`QueueSettings.claim_after` seconds. Each
entry is judged (:mod:`.judge`) and settled: acknowledged and deleted once its event is stored,
dead-lettered when refused, left pending when the store failed, so that it is claimed and tried
again: an entry is never lost to an outage, nor dead-lettered for one. Any other failure (a
500, an error of our own) is tried :data:`~.judge.MAX_DELIVERIES` times
(the group counts deliveries), then dead-lettered with it: no entry is tried forever, and none
can stop the consumer, let alone the control plane.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import time

import attrs
import trio

from transporter.cp.queue.dispatch import App
from transporter.cp.queue.judge import (
    DISPATCH_TIMEOUT,
    NOT_THE_ENTRYS_FAULT,
    Verdict,
    already_stored,
    judge,
    letter_verdict,
)
from transporter.store.base import Store, StoreUnavailable
from transporter.store.queue_store import QueueEntry

log = logging.getLogger("transporter.cp.queue")

BACKOFF = (0.5, 10.0)
"""Seconds to wait after the store failed: the first, doubling to the last."""
FORGET_AFTER = 3600.0
"""Seconds after which a consumer that holds nothing and did nothing (a replica gone: each
process joins as a new one) is removed from the group, so that the group does not grow with
every restart."""
MAX_DELIVERIES = 5
"""Deliveries of an entry that failed for a reason of its own (a 500, an error of ours) after
which it is dead-lettered with its last error (an outage is tried again without end)."""
UNEXPECTED_LOGGED = (10, 60.0)
"""Errors of our own logged (with their traceback) at most, per that many seconds: a flood of
poison entries does not flood the log; those left out are counted in the next one."""


@attrs.frozen(kw_only=True)
class QueueSettings:
    claim_after: float = 30.0
    """Seconds an entry may stay unsettled by the consumer that read it before another takes
    it over: longer than one entry's submission takes (a store call is 10 s at most), short
    enough that a dead replica's entries wait little."""
    batch: int = 16
    """Entries read (claimed) at once, and judged at once."""
    block: float = 2.0
    """Seconds one read waits for a new entry (less than the store's call timeout)."""

    @property
    def dispatch_timeout(self) -> float:
        """Seconds one entry's submission may take: half of :attr:`claim_after` at most, so
        that an entry still being submitted is never claimed and submitted again at once by
        another replica (a submission is cancelled when its time is up)."""
        return min(DISPATCH_TIMEOUT, self.claim_after / 2)


def consumer_name() -> str:
    """This process's name in the group: unique per process (a restarted replica is a new
    consumer; what the old one held is claimed like any dead replica's)."""
    return f"{socket.gethostname()[:64]}-{os.getpid()}-{secrets.token_hex(4)}"


class QueueConsumer:
    def __init__(
        self, store: Store, app: App, settings: QueueSettings, *, name: str | None = None
    ) -> None:
        self._store = store
        self._app = app
        self._settings = settings
        self.name = name or consumer_name()
        self.settled = 0
        """Entries this consumer settled (stored or dead-lettered)."""
        self._logged: list[float] = []
        self._unlogged = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Consume until cancelled; started once the group exists (or the store was not
        there to make it: then the readers make it when it is back)."""
        try:
            await self._store.queue_prepare()
        except StoreUnavailable as exc:
            log.warning("queue: cannot prepare the consumer group yet: %s", exc)
        log.info(
            "queue: consuming as %s (claiming after %g s)", self.name, self._settings.claim_after
        )
        task_status.started()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._read_forever)
            nursery.start_soon(self._claim_forever)

    async def _read_forever(self) -> None:
        delay = BACKOFF[0]
        while True:
            try:
                entries = await self._store.queue_read(
                    self.name, count=self._settings.batch, block=self._settings.block
                )
            except StoreUnavailable as exc:
                delay = await self._after_outage("read", exc, delay)
                continue
            delay = BACKOFF[0]
            await self._settle_all(entries)

    async def _claim_forever(self) -> None:
        delay = BACKOFF[0]
        while True:
            await trio.sleep(self._settings.claim_after / 2)
            try:
                entries = await self._store.queue_claim(
                    self.name, idle=self._settings.claim_after, count=self._settings.batch
                )
            except StoreUnavailable as exc:
                delay = await self._after_outage("claim", exc, delay)
                continue
            delay = BACKOFF[0]
            if entries:
                log.info("queue: claimed %d entries left unsettled", len(entries))
            await self._settle_all(entries)
            with contextlib.suppress(StoreUnavailable):  # tried again at the next round
                await self._store.queue_forget(idle=FORGET_AFTER)

    async def _after_outage(self, doing: str, exc: StoreUnavailable, delay: float) -> float:
        """Wait, then make sure the group is there (a store that lost it makes it again)."""
        log.warning("queue: cannot %s entries: %s (again in %g s)", doing, exc, delay)
        await trio.sleep(delay)
        with contextlib.suppress(StoreUnavailable):
            await self._store.queue_prepare()
        return min(delay * 2, BACKOFF[1])

    async def _settle_all(self, entries: list[QueueEntry]) -> None:
        async with trio.open_nursery() as nursery:
            for entry in entries:
                nursery.start_soon(self._settle, entry)

    async def _settle(self, entry: QueueEntry) -> None:
        """Judge and settle ``entry``; whatever fails, the entry stays pending (claimed and
        tried again) and the consumer goes on."""
        try:
            verdict = await self._verdict(entry)
            if await self._apply(entry, verdict):
                self.settled += 1
        except StoreUnavailable as exc:
            log.warning("queue: entry %s not settled (%s); tried again", entry.entry_id, exc)
        except Exception as exc:  # no entry may stop the consumer
            self._unexpected(entry, exc)
            if entry.deliveries >= MAX_DELIVERIES:
                # The error's type only: its text could hold anything of the entry's.
                message = f"the control plane failed on it {entry.deliveries} times"
                message += f" ({type(exc).__name__}; see its log)"
                given_up = letter_verdict(
                    entry, time.time(), 500, "internal", message, body=None, token_id=None
                )
                with contextlib.suppress(Exception):
                    if await self._apply(entry, given_up):
                        self.settled += 1

    async def _verdict(self, entry: QueueEntry) -> Verdict:
        now = time.time()
        timeout = self._settings.dispatch_timeout
        verdict = await judge(self._app, self._store, entry, now=now, within=timeout)
        given_up = entry.deliveries >= MAX_DELIVERIES
        if verdict.kind == "retry" and verdict.status not in NOT_THE_ENTRYS_FAULT and given_up:
            message = f"{verdict.why} (tried {entry.deliveries} times)"
            body = entry.fields.get("body")
            return letter_verdict(
                entry, now, verdict.status, "failed", message, body=body, token_id=None
            )
        letter = verdict.letter
        claimed = entry.deliveries > 1
        if letter is not None and letter.status in (401, 403) and claimed:
            return Verdict("stored") if await already_stored(self._store, entry) else verdict
        return verdict

    async def _apply(self, entry: QueueEntry, verdict: Verdict) -> bool:
        """Settle ``entry`` as ``verdict`` says; whether it was (not: left to be tried again)."""
        if verdict.kind == "stored":
            await self._store.queue_done(entry.entry_id)
            return True
        letter = verdict.letter
        if letter is None:
            log.warning(
                "queue: entry %s not stored (%s; delivery %d); tried again after %g s",
                entry.entry_id,
                verdict.why,
                entry.deliveries,
                self._settings.claim_after,
            )
            return False
        await self._store.queue_dead(entry.entry_id, letter)
        log.warning(
            "queue: entry %s refused (%d %s: %s), dead-lettered",
            entry.entry_id,
            letter.status,
            letter.error,
            letter.message,
        )
        return True

    def _unexpected(self, entry: QueueEntry, exc: Exception) -> None:
        """Log an error of our own on ``entry``, within :data:`UNEXPECTED_LOGGED`."""
        most, per = UNEXPECTED_LOGGED
        now = time.monotonic()
        self._logged = [at for at in self._logged if now - at < per]
        if len(self._logged) >= most:
            self._unlogged += 1
            return
        self._logged.append(now)
        left_out, self._unlogged = self._unlogged, 0
        log.error(
            "queue: entry %s failed (delivery %d; left pending, tried again)%s",
            entry.entry_id,
            entry.deliveries,
            f" ({left_out} more such errors not logged)" if left_out else "",
            exc_info=exc,
        )
