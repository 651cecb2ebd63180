"""The Redis store, composed of its concerns' parts."""

from __future__ import annotations

from transporter.store.redis.agents import RedisAgents
from transporter.store.redis.audit import RedisAudit
from transporter.store.redis.credentials import RedisCredentials
from transporter.store.redis.events import RedisEvents
from transporter.store.redis.feed import RedisFeed
from transporter.store.redis.progress import RedisProgress
from transporter.store.redis.queue import RedisQueue
from transporter.store.redis.rollouts import RedisRollouts


class RedisStore(
    RedisEvents,
    RedisProgress,
    RedisRollouts,
    RedisAgents,
    RedisAudit,
    RedisCredentials,
    RedisFeed,
    RedisQueue,
):
    """The :class:`~transporter.store.base.Store` on a Redis server. Open with :meth:`open`."""
