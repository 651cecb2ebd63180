"""Fixtures of the control plane's tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bed.redis import RedisServer
from tests.bed.store_backends import Backend
from transporter.config.store_spec import StoreSpec


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Each real store in turn: a SQLite file, then a Redis server of the session."""
    if request.param == "sqlite":
        return Backend("sqlite", StoreSpec.sqlite_in(tmp_path / "cp"))
    server: RedisServer = request.getfixturevalue("redis_server")
    return Backend("redis", StoreSpec.parse(server.url), server)
