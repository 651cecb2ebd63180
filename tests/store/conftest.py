"""A ``store`` of each kind on real parts: a SQLite file under tmp_path, a real redis-server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.bed.redis import RedisServer
from tests.bed.store_backends import Backend
from transporter.config.store_spec import StoreSpec
from transporter.store import Store


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        # A folder that does not exist yet: the store creates it.
        return Backend("sqlite", StoreSpec.parse(f"sqlite://{tmp_path}/data/cp/transporter.db"))
    server: RedisServer = request.getfixturevalue("redis_server")
    return Backend("redis", StoreSpec.parse(server.url), server)


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    async with backend.open() as opened:
        yield opened
