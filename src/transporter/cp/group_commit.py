"""Group commit of events' progress: the updates that arrive while one write is under way are
written together in the next, in one store transaction (one worker-thread hop, one commit).

With many agents reporting at once this turns hundreds of small writes a second into a few
larger ones; alone, an update is written at once, so latency does not suffer.

:meth:`GroupCommit.enqueue` takes an update without waiting for its write, so that one agent's
reports, read one after another off its connection, share commits too (in the order they were
enqueued); :meth:`Pending.wait` then gives the result.
"""

from __future__ import annotations

import attrs
import trio

from transporter.protocol.model import AuditEntry, EventRecord
from transporter.protocol.status import StatusUpdate
from transporter.store.base import Store

QUEUE = 1024
"""Updates waiting for the writer; a full queue makes reporters wait (backpressure)."""
MAX_BATCH = 512


@attrs.define(eq=False)
class Pending:
    """An update handed to the writer; :meth:`wait` for its result."""

    event_id: str
    update: StatusUpdate
    audit: AuditEntry | None
    store: Store
    done: trio.Event = attrs.field(factory=trio.Event)
    result: EventRecord | None = None
    error: BaseException | None = None

    async def wait(self) -> EventRecord | None:
        """What :meth:`Store.update_event` gave; raises what it raised."""
        await self.done.wait()
        if isinstance(self.error, _Stopped):  # the writer stopped first: write it alone
            return await self.store.update_event(self.event_id, self.update, audit=self.audit)
        if self.error is not None:
            raise self.error
        return self.result


class GroupCommit:
    def __init__(self, store: Store, *, max_batch: int = MAX_BATCH) -> None:
        self.store = store
        self.max_batch = max_batch
        self._send, self._receive = trio.open_memory_channel[Pending](QUEUE)
        self._running = False

    async def update(
        self, event_id: str, update: StatusUpdate, audit: AuditEntry | None = None
    ) -> EventRecord | None:
        """:meth:`Store.update_event`, batched with whatever else is being written."""
        return await (await self.enqueue(event_id, update, audit)).wait()

    async def enqueue(
        self, event_id: str, update: StatusUpdate, audit: AuditEntry | None = None
    ) -> Pending:
        """Hand an update to the writer (waits only while its queue is full). When the writer
        is not running (starting, or stopping) the update is written on its own by ``wait``."""
        pending = Pending(event_id, update, audit, self.store)
        if self._running:
            await self._send.send(pending)
        else:
            pending.error = _Stopped()
            pending.done.set()
        return pending

    async def run(self) -> None:
        """Write batches until cancelled."""
        self._running = True
        try:
            await self._write_batches()
        finally:
            self._running = False
            while True:  # whoever is still waiting writes on its own
                try:
                    pending = self._receive.receive_nowait()
                except trio.WouldBlock:
                    break
                pending.error = _Stopped()
                pending.done.set()

    async def _write_batches(self) -> None:
        while True:
            batch = [await self._receive.receive()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._receive.receive_nowait())
                except trio.WouldBlock:
                    break
            try:
                results = await self.store.update_many(
                    [(p.event_id, p.update, p.audit) for p in batch]
                )
            except Exception as exc:  # the store's error is each waiting caller's
                for pending in batch:
                    pending.error = exc
                    pending.done.set()
                continue
            except BaseException:  # cancelled mid-write: the callers write on their own
                for pending in batch:
                    pending.error = _Stopped()
                    pending.done.set()
                raise
            for pending, result in zip(batch, results, strict=True):
                pending.result = result
                pending.done.set()


class _Stopped(Exception):
    """The writer stopped before this update's turn."""
