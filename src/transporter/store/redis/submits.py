"""The Redis store's events: accepting them (one script each: the token checked, event,
progress, indexes, audit entry; :data:`~.scripts.SUBMIT`, or :data:`~.scripts.SUBMIT_SENT` for
an event stored sent), in one round trip for a batch."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Any, cast

import coredis

from transporter.protocol.model import AuditEntry, Event, EventRecord
from transporter.protocol.status import accepted, advance
from transporter.store.base import EventConflict, Sending, StoreError, Submitted, TokenRevoked
from transporter.store.event_parts import Brief
from transporter.store.json_rows import dump, dump_without_seq
from transporter.store.redis import hints
from transporter.store.redis.chain import arguments_all
from transporter.store.redis.feed import Hinting
from transporter.store.redis.records import NumberedProgress
from transporter.store.redis.scripts import HEAD_MOVED, NOT_SENT, TOKEN_REVOKED
from transporter.store.sending import each_item


class RedisSubmits(Hinting):
    async def submit(self, event: Event, audit: AuditEntry) -> tuple[EventRecord, bool]:
        result = await self._submit_alone(event, audit, None)
        if isinstance(result, StoreError):
            raise result
        return result

    async def _submit_alone(self, event: Event, audit: AuditEntry, token: str | None) -> Submitted:
        keys, args = self._submit_parts(event, hinted=True, token=token)
        async with self._guard():
            status, reply, _ = await self._chain.append(self._scripts.submit, keys, args, audit)
        return self._submitted(event, args, status, reply)

    async def submit_many(
        self,
        items: Sequence[tuple[Event, AuditEntry]],
        *,
        sending: Sequence[Sending | None] = (),
        tokens: Sequence[str | None] = (),
    ) -> list[Submitted]:
        """One atomic script per event, as :meth:`submit`, all of them in one round trip (a
        pipeline): each audit entry sealed after the one before, as the scripts will append
        them (an event stored sent appends two: :data:`~.scripts.SUBMIT_SENT`). One that finds
        the chain's head elsewhere (another replica appended, or an earlier event of the batch
        appended other than its seals assumed) wrote nothing; those are submitted again one by
        one, as are those not stored sent (their agent had more to receive): as any other. The
        other replicas hear of them all in one message (:meth:`Hinting._hint_batch`), in the
        same round trip."""
        results: list[Submitted | None] = [None] * len(items)
        sends = each_item(sending, len(items))
        checks = each_item(tokens, len(items))
        parts = [
            self._submit_parts(event, hinted=False, sending=send, token=token)
            for (event, _), send, token in zip(items, sends, checks, strict=True)
        ]
        again: list[tuple[int, Sending | None]] = []
        async with self._guard(), self._chain.lock:
            sealed = self._seal(items, sends)
            async with self._client.pipeline(transaction=False) as pipe:
                requests = [
                    self._submit_call(keys, args, seals, pipe)
                    for (keys, args), seals in zip(parts, sealed, strict=True)
                ]
                self._hint_batch(pipe, [hints.queued(event.target_agent) for event, _ in items])
            for index, (request, seals) in enumerate(zip(requests, sealed, strict=True)):
                reply = await request
                status = self._chain.follow(reply, seals[-1])
                if status in (HEAD_MOVED, NOT_SENT):
                    again.append((index, None if status == NOT_SENT else sends[index]))
                    continue
                results[index] = self._submitted(items[index][0], parts[index][1], status, reply)
        for index, send in again:  # in order: an agent's events keep the batch's order
            event, audit = items[index]
            token = checks[index]
            stored = None if send is None else await self._submit_sent(event, audit, send, token)
            results[index] = stored or await self._submit_alone(event, audit, token)
        return [result for result in results if result is not None]

    async def _submit_sent(
        self, event: Event, audit: AuditEntry, sending: Sending, token: str | None
    ) -> Submitted | None:
        """One event stored sent, alone; ``None`` when its agent had more to receive (nothing
        written)."""
        keys, args = self._submit_parts(event, hinted=True, sending=sending, token=token)
        async with self._guard():
            status, reply = await self._chain.append_all(
                self._scripts.submit_sent, keys, args, [audit, sending.audit]
            )
        if status == NOT_SENT:
            return None
        return self._submitted(event, args, status, reply)

    def _seal(
        self, items: Sequence[tuple[Event, AuditEntry]], sends: Sequence[Sending | None]
    ) -> list[list[AuditEntry]]:
        """Each item's entries (its own, and its delivery's when sent), sealed in order from
        the chain's head (held under the chain's lock)."""
        groups = [
            [audit] if send is None else [audit, send.audit]
            for (_, audit), send in zip(items, sends, strict=True)
        ]
        flat = iter(self._chain.seal_all([entry for group in groups for entry in group]))
        return [[cast(AuditEntry, next(flat)) for _ in group] for group in groups]

    def _submit_call(
        self,
        keys: list[str],
        args: list[str],
        seals: list[AuditEntry],
        pipe: coredis.client.Client[str],
    ) -> Awaitable[Any]:
        if len(seals) == 1:
            return self._chain.call(self._scripts.submit, keys, args, seals[0], pipe)
        return self._scripts.submit_sent(
            keys=[*keys, *self._chain.keys], args=[*args, *arguments_all(seals)], client=pipe
        )

    def _submit_parts(
        self,
        event: Event,
        *,
        hinted: bool,
        sending: Sending | None = None,
        token: str | None = None,
    ) -> tuple[list[str], list[str]]:
        """The submit script's keys and arguments but the audit chain's; ``hinted``: the
        script tells the other replicas (else the caller does, for a batch). ``sending``:
        :data:`~.scripts.SUBMIT_SENT`'s, the event stored sent. ``token``: the id of the token
        the script checks is not revoked."""
        keys = self._keys
        agent = event.target_agent
        record = accepted(EventRecord(event=event, seq=0))
        if sending is not None:
            record = advance(record, sending.update) or record
        state = record.state
        progress = NumberedProgress.of(record)
        extra = [] if sending is None else [str(sending.after)]
        return [
            keys.event,
            keys.progress,
            keys.seq,
            keys.all,
            keys.index(agent=agent),
            keys.index(state=state),
            keys.index(agent=agent, state=state),
            keys.outbox(agent),
            keys.expiry,
            keys.brief,
            keys.notify,
            keys.tokens,
        ], [
            event.id,
            dump(event),
            dump_without_seq(progress),
            repr(event.expires_at),
            Brief.of(event).text(),
            self._hint(hints.queued(agent)) if hinted else "",
            token or "",
            *extra,
        ]

    def _submitted(self, event: Event, args: list[str], status: int, reply: Any) -> Submitted:
        """What the submit script's ``reply`` (status 1, 0 or :data:`TOKEN_REVOKED`) means for
        ``event`` (``args``: the script's): stored, already there (the same request), another
        event under its id, or its token revoked."""
        if status == TOKEN_REVOKED:
            return TokenRevoked(args[6])  # the script's seventh argument
        text = args[1]  # the event's JSON: the script's second argument
        answer = cast(list[Any], reply)
        if status == 1:
            self._texts.events.wrote(event.id, text, event)
            return self._texts.progress.load(event.id, answer[1]).whole(event), True
        existing = self._texts.record(event.id, answer[1], answer[2])
        if existing.event.same_request(event):
            return existing, False
        return EventConflict(event.id)
