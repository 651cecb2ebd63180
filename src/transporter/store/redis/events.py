"""The Redis store's events: accepting them (:mod:`.submits`), and reading them back.

Reads fetch an event's text with its progress: events are decoded again only when their text
changed (see records.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Any, cast

import coredis

from transporter.protocol.model import Event, EventRecord, EventState
from transporter.store.base import EventProgress, Page, StoreError
from transporter.store.event_parts import Brief, event_progress
from transporter.store.paging import clamp_limit, cursor_seq, page
from transporter.store.redis.submits import RedisSubmits

SEQ_END = 2**53
"""Above every ``seq`` a zset's score holds exactly (a double)."""

CHUNK = 500
"""Fields in one ``HMGET``."""


class RedisEvents(RedisSubmits):
    async def get_event(self, event_id: str) -> EventRecord | None:
        async with self._guard():
            async with self._client.pipeline(transaction=False) as pipe:
                progress = pipe.hget(self._keys.progress, event_id)
                event = pipe.hget(self._keys.event, event_id)
            progress_text, event_text = await progress, await event
        if progress_text is None:
            return None
        return self._texts.record(event_id, progress_text, event_text)

    async def get_events(self, event_ids: Sequence[str]) -> list[EventRecord | None]:
        """The progress of every id in one round trip (``HMGET`` of at most :data:`CHUNK`
        ids each, pipelined), then the events not decoded lately in another: an event is
        written once, so one read lately is the one stored (as the SQLite store has it)."""
        wanted = list(dict.fromkeys(event_ids))
        async with self._guard():
            texts = await self._fields(self._keys.progress, wanted)
            progress = dict(zip(wanted, texts, strict=True))
            events = {i: self._texts.events.last(i) for i, text in progress.items() if text}
            unread = [event_id for event_id, event in events.items() if event is None]
            found = await self._fields(self._keys.event, unread)
            for event_id, text in zip(unread, found, strict=True):
                if text is None:
                    raise StoreError(f"event {event_id!r} has progress but no event in Redis")
                events[event_id] = self._texts.events.load(event_id, text)
        out: list[EventRecord | None] = []
        for event_id in event_ids:
            text, event = progress.get(event_id), events.get(event_id)
            if text is None or event is None:
                out.append(None)
            else:
                out.append(self._texts.progress.load(event_id, text).whole(event))
        return out

    async def event_progress(self, event_ids: Sequence[str]) -> list[EventProgress | None]:
        """Progress and brief of every id in one round trip; an event stored without a brief
        (by a version before them) is read whole, once, and its brief written for next time."""
        wanted = list(dict.fromkeys(event_ids))
        async with self._guard():
            async with self._client.pipeline(transaction=False) as pipe:
                texts_of = _hmget(pipe, self._keys.progress, wanted)
                briefs_of = _hmget(pipe, self._keys.brief, wanted)
            texts, brief_texts = await _values(texts_of), await _values(briefs_of)
            briefs = {
                i: Brief.read(b) for i, b in zip(wanted, brief_texts, strict=True) if b is not None
            }
            lacking = [i for i, t in zip(wanted, texts, strict=True) if t and i not in briefs]
            briefs.update(await self._briefs_of_events(lacking))
        found = {
            event_id: event_progress(event_id, briefs[event_id], text)
            for event_id, text in zip(wanted, texts, strict=True)
            if text is not None and event_id in briefs
        }
        return [found.get(event_id) for event_id in event_ids]

    async def _briefs_of_events(self, event_ids: list[str]) -> dict[str, Brief]:
        """Briefs made from the events themselves (stored before briefs were), kept for next
        time (``HSETNX``: a brief is never changed once written)."""
        if not event_ids:
            return {}
        briefs: dict[str, Brief] = {}
        texts = await self._fields(self._keys.event, event_ids)
        for event_id, text in zip(event_ids, texts, strict=True):
            if text is not None:
                briefs[event_id] = Brief.of(self._texts.events.load(event_id, text))
        async with self._client.pipeline(transaction=False) as pipe:
            kept = [pipe.hsetnx(self._keys.brief, i, brief.text()) for i, brief in briefs.items()]
        for request in kept:
            await request
        return briefs

    async def _fields(self, key: str, fields: list[str]) -> list[str | None]:
        """``HMGET key fields`` in chunks of at most :data:`CHUNK`, in one pipeline."""
        if not fields:
            return []
        async with self._client.pipeline(transaction=False) as pipe:
            requests = _hmget(pipe, key, fields)
        return await _values(requests)

    async def list_events(
        self,
        *,
        agent: str | None = None,
        state: EventState | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[EventRecord]:
        limit = clamp_limit(limit)
        before = cursor_seq(cursor, below=SEQ_END)
        upper = "+inf" if before is None else f"({before}"
        records = await self._page(self._keys.index(agent, state), upper, "rev", limit + 1)
        return page(records, limit, lambda record: record.seq)

    async def outbox(
        self, agent_id: str, *, after: int = 0, limit: int = 100
    ) -> list[tuple[int, Event]]:
        records = await self._page(
            self._keys.outbox(agent_id), "+inf", "fwd", clamp_limit(limit), lower=f"({after}"
        )
        return [(record.seq, record.event) for record in records]

    async def agents_with_unfinished(self, agent_ids: Sequence[str]) -> set[str]:
        """An ``EXISTS`` of each agent's outbox (a zset is gone once empty), in one pipeline."""
        wanted = list(dict.fromkeys(agent_ids))
        if not wanted:
            return set()
        async with self._guard():
            async with self._client.pipeline(transaction=False) as pipe:
                requests = [pipe.exists([self._keys.outbox(agent)]) for agent in wanted]
            found = [await request for request in requests]
        return {agent for agent, count in zip(wanted, found, strict=True) if count}

    async def expiring(self, now: float, *, limit: int = 100) -> list[str]:
        async with self._guard():
            ids = await self._client.zrange(
                self._keys.expiry,
                "-inf",
                repr(now),
                sortby=coredis.PureToken.BYSCORE,
                offset=0,
                count=clamp_limit(limit),
            )
        return list(ids)

    async def count_unfinished(self) -> dict[EventState, int]:
        states = [state for state in EventState if not state.terminal]
        async with self._guard():
            async with self._client.pipeline(transaction=False) as pipe:
                counts = [pipe.zcard(self._keys.index(state=state)) for state in states]
            return {state: int(await count) for state, count in zip(states, counts, strict=True)}

    async def _page(
        self, index: str, upper: str, order: str, count: int, *, lower: str = "-inf"
    ) -> list[EventRecord]:
        async with self._guard():
            reply: Any = await self._scripts.page(
                keys=[index, self._keys.progress, self._keys.event],
                args=[lower, upper, order, count],
            )
        found = cast(list[str | None], reply)
        return [
            self._texts.record(str(event_id), progress, event)
            for event_id, progress, event in zip(found[::3], found[1::3], found[2::3], strict=True)
            if progress is not None
        ]


def _hmget(pipe: Any, key: str, fields: list[str]) -> list[Awaitable[Any]]:
    """``HMGET key fields`` queued on ``pipe`` in chunks of at most :data:`CHUNK` fields."""
    return [
        pipe.hmget(key, fields[start : start + CHUNK]) for start in range(0, len(fields), CHUNK)
    ]


async def _values(requests: list[Awaitable[Any]]) -> list[str | None]:
    """The values the ``HMGET`` requests answered, in order (after their pipeline ran)."""
    return [value for request in requests for value in await request]
