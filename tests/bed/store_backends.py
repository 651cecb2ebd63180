"""Where a store under test keeps its data, so that a test can open it again."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

import attrs

from tests.bed.redis import RedisServer
from transporter.config.store_spec import StoreSpec
from transporter.store import Store, open_store


@attrs.frozen
class Backend:
    kind: str
    spec: StoreSpec
    redis: RedisServer | None = None

    def open(self, *, call_timeout: float = 10.0) -> AbstractAsyncContextManager[Store]:
        """A new store on the same data (file or server) each time."""
        return open_store(self.spec, call_timeout=call_timeout)
