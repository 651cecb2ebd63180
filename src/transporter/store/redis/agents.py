"""The Redis store's agent records: one hash."""

from __future__ import annotations

from transporter.protocol.model import AgentRecord
from transporter.store.json_rows import dump, load
from transporter.store.redis.connection import RedisConnection


class RedisAgents(RedisConnection):
    async def put_agent(self, record: AgentRecord) -> None:
        async with self._guard():
            await self._client.hset(self._keys.agents, {record.info.id: dump(record)})

    async def get_agent(self, agent_id: str) -> AgentRecord | None:
        async with self._guard():
            text = await self._client.hget(self._keys.agents, agent_id)
        return None if text is None else load(text, AgentRecord)

    async def list_agents(self) -> list[AgentRecord]:
        async with self._guard():
            stored = await self._client.hgetall(self._keys.agents)
        return [load(stored[agent_id], AgentRecord) for agent_id in sorted(stored)]
