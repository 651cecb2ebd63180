"""The Redis store's rollouts: created and saved by one script each (rollout_scripts.py).

The spec is written once, by the create, in a hash of its own; a save writes the rest (the
record's part, :class:`RolloutPart`), a compare-and-set on the version kept beside it: of two
saves from one version, whichever replica sends them, the script applies the first and refuses
the second. Parts are decoded again only when their text changed; specs only when not kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import attrs

from transporter.protocol.model import AuditEntry
from transporter.protocol.rollout import RolloutKind, RolloutRecord, RolloutSpec, RolloutState
from transporter.store.base import Page, RolloutConflict, StoreError
from transporter.store.json_rows import dump, dump_without_seq
from transporter.store.paging import clamp_limit, cursor_seq, page
from transporter.store.redis.connection import RedisConnection
from transporter.store.redis.events import SEQ_END
from transporter.store.rollout_rows import NumberedPart, SpecChanged, same_request

_STATES = tuple(RolloutState)


class RedisRollouts(RedisConnection):
    async def create_rollout(
        self, record: RolloutRecord, audit: AuditEntry
    ) -> tuple[RolloutRecord, bool]:
        keys = self._keys
        spec, state = record.spec, record.state
        part = attrs.evolve(NumberedPart.of(record), version=1)
        text, spec_text = dump_without_seq(part), dump(spec)
        async with self._guard():
            status, reply, _ = await self._chain.append(
                self._rollout_scripts.create,
                [
                    keys.rollout,
                    keys.rollout_version,
                    keys.rollout_state,
                    keys.rollout_seq,
                    keys.rollout_index(),
                    keys.rollout_index(kind=spec.kind),
                    keys.rollout_index(state=state),
                    keys.rollout_index(kind=spec.kind, state=state),
                    keys.rollout_open,
                    keys.rollout_spec,
                ],
                [spec.id, text, state.value, "0" if state.final else "1", spec_text],
                audit,
            )
        if status == 1:
            self._rollouts.wrote_spec(spec, spec_text)
            return self._wrote(spec, part, text, int(reply[1])), True
        existing = self._record(spec.id, str(reply[1]), self._spec(spec.id, reply[2]))
        if same_request(existing.spec, spec):
            return existing, False
        raise RolloutConflict(spec.id)

    async def get_rollout(self, rollout_id: str) -> RolloutRecord | None:
        async with self._guard():
            text = await self._client.hget(self._keys.rollout, rollout_id)
            if text is None:
                return None
            specs = await self._specs([rollout_id])
        return self._record(rollout_id, text, specs[rollout_id])

    async def save_rollout(
        self, record: RolloutRecord, audits: Sequence[AuditEntry] = ()
    ) -> RolloutRecord | None:
        """Writes the part that changes; the spec, written once, is compared, not written."""
        self._rollouts.check(record)
        keys, kind = self._keys, record.spec.kind
        part = attrs.evolve(NumberedPart.of(record), version=record.version + 1)
        script_keys = [
            keys.rollout,
            keys.rollout_version,
            keys.rollout_state,
            keys.rollout_open,
            keys.rollout_index(),
            *(keys.rollout_index(state=state) for state in _STATES),
            *(keys.rollout_index(kind=kind, state=state) for state in _STATES),
            keys.rollout_index(kind=kind),
        ]
        args = [
            record.spec.id,
            str(record.version),
            dump_without_seq(part),
            record.state.value,
            "0" if record.state.final else "1",
            str(len(_STATES)),
            *(state.value for state in _STATES),
        ]
        script = self._rollout_scripts.save
        async with self._guard():
            if audits:
                status, reply = await self._chain.append_all(script, script_keys, args, audits)
            else:
                reply = cast(list[Any], await script(keys=script_keys, args=args))
                status = self._chain.follow(reply, None)
        if status == -3:
            raise SpecChanged(record.spec.id, f"kind {kind.value!r} is not the one stored")
        if status != 1:
            return None
        return self._wrote(record.spec, part, args[2], int(reply[1]))

    async def list_rollouts(
        self,
        *,
        state: RolloutState | None = None,
        kind: RolloutKind | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[RolloutRecord]:
        limit = clamp_limit(limit)
        before = cursor_seq(cursor, below=SEQ_END)
        index = self._keys.rollout_index(kind=kind, state=state)
        async with self._guard():
            reply: Any = await self._rollout_scripts.page(
                keys=[index, self._keys.rollout],
                args=["+inf" if before is None else f"({before}", limit + 1],
            )
            found = cast(list[str | None], reply)
            texts = {
                str(rollout_id): text
                for rollout_id, text in zip(found[::2], found[1::2], strict=True)
                if text is not None
            }
            specs = await self._specs(list(texts))
        records = [self._record(i, text, specs[i]) for i, text in texts.items()]
        return page(records, limit, lambda record: record.seq)

    async def _specs(self, rollout_ids: list[str]) -> dict[str, RolloutSpec]:
        """The specs of ``rollout_ids``: those kept decoded, the others read in one ``HMGET``."""
        specs = {i: spec for i in rollout_ids if (spec := self._rollouts.spec(i)) is not None}
        unread = [i for i in rollout_ids if i not in specs]
        if unread:
            texts = await self._client.hmget(self._keys.rollout_spec, unread)
            for rollout_id, text in zip(unread, texts, strict=True):
                specs[rollout_id] = self._spec(rollout_id, text)
        return specs

    def _spec(self, rollout_id: str, text: object) -> RolloutSpec:
        if text is None:
            raise StoreError(f"rollout {rollout_id!r} has no spec in {self._keys.rollout_spec}")
        return self._rollouts.spec(rollout_id) or self._rollouts.read_spec(rollout_id, str(text))

    def _record(self, rollout_id: str, text: str, spec: RolloutSpec) -> RolloutRecord:
        part = self._rollouts.part(rollout_id, text)
        return part.record(spec, part.seq, part.version)

    def _wrote(self, spec: RolloutSpec, part: NumberedPart, text: str, seq: int) -> RolloutRecord:
        """``part`` of ``spec``'s rollout as a script stored it: ``text`` (without seq) after
        its ``seq``."""
        stored = attrs.evolve(part, seq=seq)
        self._rollouts.wrote_part(spec.id, f'{{"seq":{seq},' + text[1:], stored)
        return stored.record(spec, seq, stored.version)

    async def open_rollouts(self) -> list[str]:
        async with self._guard():
            ids = await self._client.zrange(self._keys.rollout_open, 0, -1)
        return [str(rollout_id) for rollout_id in ids]
