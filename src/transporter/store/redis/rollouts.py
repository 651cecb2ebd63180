"""The Redis store's rollouts: created and saved by one script each (rollout_scripts.py).

A save is a compare-and-set on the version kept beside the record: of two saves from one
version, whichever replica sends them, the script applies the first and refuses the second.
Records are decoded again only when their text changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import attrs

from transporter.protocol.model import AuditEntry
from transporter.protocol.rollout import RolloutKind, RolloutRecord, RolloutState
from transporter.store.base import Page, RolloutConflict
from transporter.store.json_rows import dump_without_seq
from transporter.store.paging import clamp_limit, cursor_seq, page
from transporter.store.redis.connection import RedisConnection
from transporter.store.redis.events import SEQ_END
from transporter.store.rollout_rows import same_request

_STATES = tuple(RolloutState)


class RedisRollouts(RedisConnection):
    async def create_rollout(
        self, record: RolloutRecord, audit: AuditEntry
    ) -> tuple[RolloutRecord, bool]:
        keys = self._keys
        spec, state = record.spec, record.state
        stored = attrs.evolve(record, version=1)
        text = dump_without_seq(stored)
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
                ],
                [spec.id, text, state.value, "0" if state.final else "1"],
                audit,
            )
        if status == 1:
            return self._wrote(stored, text, int(reply[1])), True
        existing = self._rollouts.load(spec.id, str(reply[1]))
        if same_request(existing.spec, spec):
            return existing, False
        raise RolloutConflict(spec.id)

    async def get_rollout(self, rollout_id: str) -> RolloutRecord | None:
        async with self._guard():
            text = await self._client.hget(self._keys.rollout, rollout_id)
        return None if text is None else self._rollouts.load(rollout_id, text)

    async def save_rollout(
        self, record: RolloutRecord, audits: Sequence[AuditEntry] = ()
    ) -> RolloutRecord | None:
        keys, kind = self._keys, record.spec.kind
        new = attrs.evolve(record, version=record.version + 1)
        script_keys = [
            keys.rollout,
            keys.rollout_version,
            keys.rollout_state,
            keys.rollout_open,
            keys.rollout_index(),
            *(keys.rollout_index(state=state) for state in _STATES),
            *(keys.rollout_index(kind=kind, state=state) for state in _STATES),
        ]
        args = [
            record.spec.id,
            str(record.version),
            dump_without_seq(new),
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
        if status != 1:
            return None
        return self._wrote(new, args[2], int(reply[1]))

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
        records = [
            self._rollouts.load(str(rollout_id), text)
            for rollout_id, text in zip(found[::2], found[1::2], strict=True)
            if text is not None
        ]
        return page(records, limit, lambda record: record.seq)

    def _wrote(self, record: RolloutRecord, text: str, seq: int) -> RolloutRecord:
        """``record`` as a script stored it: ``text`` (without seq) after its ``seq``."""
        stored = attrs.evolve(record, seq=seq)
        self._rollouts.wrote(stored.spec.id, f'{{"seq":{seq},' + text[1:], stored)
        return stored

    async def open_rollouts(self) -> list[str]:
        async with self._guard():
            ids = await self._client.zrange(self._keys.rollout_open, 0, -1)
        return [str(rollout_id) for rollout_id in ids]
