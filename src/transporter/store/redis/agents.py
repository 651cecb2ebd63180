"""The Redis store's agent records: one hash."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from coredis.commands.script import Script

from transporter.protocol.model import AgentRecord, AuditEntry
from transporter.store.base import StoreError
from transporter.store.json_rows import dump, load
from transporter.store.redis.connection import RedisConnection
from transporter.store.redis.scripts import APPEND_AUDIT, APPEND_AUDITS

# KEYS: agents, audit:seq, audit:head, audit
# ARGV: n, then n pairs of agent id and record JSON, then the audit arguments of the entries
#       (the head they were sealed after, then seq, hash and JSON of each: chain.arguments_all)
# Returns {1} when written, {-2, seq, hash} when the audit chain's head moved (nothing written).
PUT_AGENTS = (
    APPEND_AUDIT
    + APPEND_AUDITS
    + """
local a = 2 + 2 * tonumber(ARGV[1])
local moved = audit_moved(2, a)
if moved then return moved end
append_audits(2, a)
for i = 2, a - 1, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return {1}
"""
)


class RedisAgents(RedisConnection):
    async def put_agent(self, record: AgentRecord) -> None:
        async with self._guard():
            await self._client.hset(self._keys.agents, {record.info.id: dump(record)})

    async def put_agents(
        self, records: Sequence[AgentRecord], audits: Sequence[AuditEntry] = ()
    ) -> None:
        # One script (atomic, one round trip) for the records and the entries together; the
        # records alone are one HSET.
        texts = {record.info.id: dump(record) for record in records}  # a later one wins
        if not audits:
            if texts:
                async with self._guard():
                    await self._client.hset(self._keys.agents, texts)
            return
        args = [str(len(texts))]
        for agent_id, text in texts.items():
            args += [agent_id, text]
        async with self._guard():
            status, _ = await self._chain.append_all(
                self._put_agents_script, [self._keys.agents], args, audits
            )
        if status != 1:
            raise StoreError(f"the agents' records were not written (script status {status})")

    @functools.cached_property
    def _put_agents_script(self) -> Script[str]:
        return self._client.register_script(PUT_AGENTS)

    async def get_agent(self, agent_id: str) -> AgentRecord | None:
        async with self._guard():
            text = await self._client.hget(self._keys.agents, agent_id)
        return None if text is None else load(text, AgentRecord)

    async def list_agents(self) -> list[AgentRecord]:
        async with self._guard():
            stored = await self._client.hgetall(self._keys.agents)
        return [load(stored[agent_id], AgentRecord) for agent_id in sorted(stored)]
