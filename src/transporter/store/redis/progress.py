"""The Redis store's progress reports: a compare-and-set on the event's progress alone.

``update_event`` reads the progress (and the event only when none of it was read lately),
applies :func:`transporter.protocol.status.advance` here, and writes with a script only if the
progress is unchanged since it was read (SHA-1 of its text), else reads again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import attrs

from transporter.protocol.model import AuditEntry, Event, EventRecord
from transporter.protocol.status import StatusUpdate, advance
from transporter.store.base import StoreError
from transporter.store.json_rows import dump
from transporter.store.redis import hints
from transporter.store.redis.feed import Hinting
from transporter.store.redis.records import NumberedProgress

type Update = tuple[str, StatusUpdate, AuditEntry | None]
type Current = dict[str, tuple[str, EventRecord] | None]
"""By event id: its progress as read and its record (``None``: unknown)."""


BATCH_ROUNDS = 3
"""Times a batch of progress reports is tried as a batch before what is left of it is written
one by one (with replicas, another's audit entries move the chain's head under a batch)."""


@attrs.frozen
class _Step:
    """One planned compare-and-set: ``new`` for item ``index``, with its audit entry."""

    index: int
    new: EventRecord
    keys: list[str]
    args: list[str]
    audit: AuditEntry | None


class RedisProgress(Hinting):
    async def update_event(
        self, event_id: str, update: StatusUpdate, *, audit: AuditEntry | None = None
    ) -> EventRecord | None:
        async with self._guard():  # one timeout for all the rounds
            while True:  # compare-and-set: another writer in between means reading again
                current = await self._current([event_id])
                step = self._plan(0, event_id, update, audit, current, hinted=True)
                if step is None:
                    return None
                if audit is None:
                    reply: Any = await self._scripts.compare_and_set(keys=step.keys, args=step.args)
                    status = self._chain.follow(reply, None)
                else:  # the chain's turn only for the write: reading and advancing need none
                    script = self._scripts.compare_and_set
                    status, _, _ = await self._chain.append(script, step.keys, step.args, audit)
                if status == 1:
                    return step.new
                if status == -1:
                    return None

    async def update_many(self, items: Sequence[Update]) -> list[EventRecord | None]:
        """Like :meth:`update_event` for each, in order, in two round trips: the progress read
        at once (a pipeline), each update advanced from the one before it (an event may have
        several in a batch), then every compare-and-set at once. One whose progress changed
        meanwhile, or whose audit entry found the chain's head elsewhere, wrote nothing: those
        are done again as a batch (another replica's append to the audit chain fails every
        later entry of a batch), up to :data:`BATCH_ROUNDS` times, then one by one, in order
        (each telling the other replicas itself). The others hear of the writes of the batch
        in one message, sent once their replies say they were written (a hint of a write that
        did not happen would free a slot of the agent's delivery window on another replica for
        an event still under way)."""
        return await self._update_batch(items, BATCH_ROUNDS)

    async def _update_batch(self, items: Sequence[Update], rounds: int) -> list[EventRecord | None]:
        if len(items) < 2 or rounds < 1:
            return [await self.update_event(i, update, audit=audit) for i, update, audit in items]
        results: list[EventRecord | None] = [None] * len(items)
        again: list[int] = []
        async with self._guard():
            current = await self._current(list(dict.fromkeys(item[0] for item in items)))
            async with self._chain.lock:
                steps = [
                    step
                    for index, item in enumerate(items)
                    if (step := self._plan(index, *item, current, hinted=False)) is not None
                ]
                sealed = self._chain.seal_all([step.audit for step in steps])
                script = self._scripts.compare_and_set
                async with self._client.pipeline(transaction=False) as pipe:
                    requests = [
                        self._chain.call(script, step.keys, step.args, seal, pipe)
                        for step, seal in zip(steps, sealed, strict=True)
                    ]
                written: list[str] = []
                for step, seal, request in zip(steps, sealed, requests, strict=True):
                    status = self._chain.follow(await request, seal)
                    if status == 1:
                        results[step.index] = step.new
                        written.append(_progressed(step.new))
                    elif status != -1:  # changed meanwhile, or the chain moved: nothing written
                        again.append(step.index)
            await self._hint_now(written)
        redone = await self._update_batch([items[index] for index in again], rounds - 1)
        for index, record in zip(again, redone, strict=True):
            results[index] = record
        return results

    async def _current(self, ids: list[str]) -> Current:
        """The progress of each of ``ids`` as stored now, with its record: its event is read
        only when none of it was read lately (events are written once)."""
        events: dict[str, Event | None] = {i: self._texts.events.last(i) for i in ids}
        missing = [event_id for event_id, event in events.items() if event is None]
        async with self._client.pipeline(transaction=False) as pipe:
            progress = [pipe.hget(self._keys.progress, event_id) for event_id in ids]
            event_texts = [pipe.hget(self._keys.event, event_id) for event_id in missing]
        for event_id, request in zip(missing, event_texts, strict=True):
            text = await request
            events[event_id] = None if text is None else self._texts.events.load(event_id, text)
        current: Current = {}
        for event_id, request in zip(ids, progress, strict=True):
            text = await request
            event = events[event_id]
            if text is None:
                current[event_id] = None
            elif event is None:
                raise StoreError(f"event {event_id!r} has progress but no event in Redis")
            else:
                current[event_id] = (text, self._texts.progress.load(event_id, text).whole(event))
        return current

    def _plan(
        self,
        index: int,
        event_id: str,
        update: StatusUpdate,
        audit: AuditEntry | None,
        current: Current,
        *,
        hinted: bool,
    ) -> _Step | None:
        """The compare-and-set that applies ``update`` to the event as in ``current`` (which
        then holds the new progress, for the next update of the event in a batch); ``None``
        when the event is unknown or the update does not apply (stale, or a repeat).
        ``hinted``: the script tells the other replicas (else the caller does, for a batch)."""
        found = current[event_id]
        if found is None:
            return None
        text, old = found
        new = advance(old, update)
        if new is None:
            return None
        progress = NumberedProgress.of(new)
        new_text = dump(progress)
        self._texts.progress.wrote(event_id, new_text, progress)
        current[event_id] = (new_text, new)
        keys = self._keys
        agent = new.event.target_agent
        return _Step(
            index,
            new,
            [
                keys.progress,
                keys.index(state=old.state),
                keys.index(state=new.state),
                keys.index(agent=agent, state=old.state),
                keys.index(agent=agent, state=new.state),
                keys.outbox(agent),
                keys.expiry,
                keys.notify,
            ],
            [
                event_id,
                hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest(),
                new_text,
                str(new.seq),
                "1" if new.state.terminal else "0",
                self._hint(_progressed(new)) if hinted else "",
            ],
            audit,
        )


def _progressed(record: EventRecord) -> str:
    return hints.progressed(
        record.event.id, record.event.target_agent, terminal=record.state.terminal
    )
