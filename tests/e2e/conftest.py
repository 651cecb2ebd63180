"""Fixtures of the end-to-end tests: a control plane, and agents on real clusters."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from tests.bed.harness import Agent, ControlPlane
from tests.bed.kube import Cluster
from transporter.agent.policy import DEFAULT_POLICY, Policy
from transporter.config.store_spec import StoreSpec

_agents = itertools.count(1)


@pytest.fixture
async def cp(nursery: trio.Nursery, tmp_path: Path) -> ControlPlane:
    """A running control plane on the embedded SQLite store."""
    plane = ControlPlane(nursery, tmp_path / "cp")
    await plane.start()
    return plane


@pytest.fixture
def make_agent(nursery: trio.Nursery) -> Callable[..., Agent]:
    """Agents with unique ids (the clusters are shared by the test session)."""

    def make(
        cluster: Cluster,
        *,
        labels: dict[str, str] | None = None,
        policy: Policy = DEFAULT_POLICY,
        impersonate: bool = False,
    ) -> Agent:
        agent_id = f"agent-{next(_agents)}"
        return Agent(nursery, agent_id, cluster, labels or {}, policy, impersonate=impersonate)

    return make


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
