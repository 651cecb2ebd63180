"""Fixtures of the end-to-end tests (``cp`` and ``make_agent`` are in tests/conftest.py): more
clusters, and a control plane on each store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from tests.bed.harness import ControlPlane
from tests.bed.kube import Cluster
from transporter.config.store_spec import StoreSpec


@pytest.fixture(scope="session")
def second_cluster(cluster_factory: Callable[[], Cluster]) -> Cluster:
    return cluster_factory()


@pytest.fixture(scope="session")
def third_cluster(cluster_factory: Callable[[], Cluster]) -> Cluster:
    """One more cluster for the session (rollouts over three clusters)."""
    return cluster_factory()


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def store(request: pytest.FixtureRequest) -> StoreSpec | None:
    """The store of a test that runs on each: ``None`` (SQLite in the control plane's data
    folder) or a fresh redis-server of the test's."""
    if request.param == "redis":
        return StoreSpec.parse(request.getfixturevalue("redis_server").url)
    return None


@pytest.fixture
async def plane(store: StoreSpec | None, nursery: trio.Nursery, tmp_path: Path) -> ControlPlane:
    """A running control plane on each store (:func:`store`)."""
    started = ControlPlane(nursery, tmp_path / "cp", store=store)
    await started.start()
    return started
