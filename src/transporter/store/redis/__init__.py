"""The shared store: Redis through coredis (native on trio), for several control-plane replicas.

Every write is one Lua script, so it is atomic: ``submit`` (event, progress, indexes, audit
entry), a token's creation or revocation with its audit entry, and the compare-and-set of a
progress report. Durability is the server's: run it with ``appendonly yes`` and ``appendfsync
always`` for an event to be on disk before "202 accepted".

Its modules: ``keys`` (the layout), ``scripts``, ``connection`` (opening, the guard of every
call), ``tidy``, ``chain`` (appending to the audit chain), ``records``, ``migration`` (from an
older layout), and one per concern: ``events``, ``progress``, ``agents``, ``audit``,
``credentials``, ``rollouts`` (with ``rollout_scripts``); ``store`` puts them together.
"""

from transporter.store.redis.connection import DEFAULT_TIMEOUT
from transporter.store.redis.keys import DEFAULT_PREFIX
from transporter.store.redis.store import RedisStore

__all__ = ["DEFAULT_PREFIX", "DEFAULT_TIMEOUT", "RedisStore"]
