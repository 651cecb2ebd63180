"""The Store boundary and its implementations: the only package that imports sqlite3 or coredis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from transporter.config.store_spec import StoreSpec
from transporter.store.audit import VerifyResult, verify_audit
from transporter.store.base import (
    MAX_LIMIT,
    AgentStore,
    AuditStore,
    CredentialStore,
    EventConflict,
    EventProgress,
    EventStore,
    InvalidCursor,
    Page,
    RolloutConflict,
    RolloutStore,
    Store,
    StoreError,
    StoreUnavailable,
    TokenConflict,
)

DEFAULT_TIMEOUT = 10.0
"""Seconds one store call may take before it fails with :class:`StoreUnavailable`."""

__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_LIMIT",
    "AgentStore",
    "AuditStore",
    "CredentialStore",
    "EventConflict",
    "EventProgress",
    "EventStore",
    "InvalidCursor",
    "Page",
    "RolloutConflict",
    "RolloutStore",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "TokenConflict",
    "VerifyResult",
    "open_store",
    "verify_audit",
]


@asynccontextmanager
async def open_store(
    spec: StoreSpec, *, call_timeout: float = DEFAULT_TIMEOUT
) -> AsyncIterator[Store]:
    """The store ``spec`` names, open for the block and closed after it.

    Each kind's driver is imported here, on first use, so that a control plane on the embedded
    store never loads coredis (and ``--help`` of the single file stays fast).
    """
    if spec.kind == "sqlite":
        from transporter.store.sqlite import SQLiteStore  # lazy on purpose

        if spec.path is None:
            raise StoreError(f"store URL {spec.url!r} names no file")
        store = await SQLiteStore.open(spec.path, call_timeout=call_timeout)
        try:
            yield store
        finally:
            await store.aclose()
    else:
        from transporter.store.redis import RedisStore  # lazy on purpose

        async with RedisStore.open(spec.url, call_timeout=call_timeout) as redis_store:
            yield redis_store
