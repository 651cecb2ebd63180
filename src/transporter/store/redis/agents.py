"""The Redis store's agent records: one hash."""

from __future__ import annotations

from collections.abc import Sequence

from transporter.protocol.model import AgentRecord, AuditEntry
from transporter.store.json_rows import dump, load
from transporter.store.redis.connection import RedisConnection


class RedisAgents(RedisConnection):
    async def put_agent(self, record: AgentRecord) -> None:
        async with self._guard():
            await self._client.hset(self._keys.agents, {record.info.id: dump(record)})

    async def put_agents(
        self, records: Sequence[AgentRecord], audits: Sequence[AuditEntry] = ()
    ) -> None:
        # TODO(issue 14): one write for all of them.
        for record in records:
            await self.put_agent(record)
        for entry in audits:
            await self.audit(entry)  # type: ignore[attr-defined]

    async def get_agent(self, agent_id: str) -> AgentRecord | None:
        async with self._guard():
            text = await self._client.hget(self._keys.agents, agent_id)
        return None if text is None else load(text, AgentRecord)

    async def list_agents(self) -> list[AgentRecord]:
        async with self._guard():
            stored = await self._client.hgetall(self._keys.agents)
        return [load(stored[agent_id], AgentRecord) for agent_id in sorted(stored)]
