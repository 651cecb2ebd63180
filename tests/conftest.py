"""Fixtures for the real test bed (Kubernetes clusters and redis-servers on free ports, the
single-file build) and the markers they set: a test is marked by what it asks for."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trio

from tests.bed.controllers import controllers_bin as build_controllers
from tests.bed.controllers import running_controllers
from tests.bed.harness import Agent, ControlPlane
from tests.bed.kube import Cluster, running_cluster, testbed_bin
from tests.bed.logwatch import LogWatch
from tests.bed.redis import RedisServer, running_redis
from tests.bed.roles import SINGLE_FILE
from transporter.agent.policy import DEFAULT_POLICY, Policy

MARKED_BY_FIXTURE = {
    "kube": frozenset(
        {"kube_bin", "cluster_factory", "cluster", "second_cluster", "controllers_bin"}
    ),
    "redis": frozenset({"redis_server", "redis_factory"}),
    "binary": frozenset({"binary"}),
}
"""The marker of each test that uses one of these fixtures, directly or through another."""


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marks come from the fixtures a test uses, not from hands: a test whose fixture closure
    holds a cluster (any fixture built on one included) is ``kube``, so that ``-m "not kube"``
    never builds kube-apiserver nor starts one; likewise ``redis`` and ``binary``. (A redis
    store chosen by a parameter through ``request.getfixturevalue`` is marked on its
    parameter.)"""
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for marker, fixtures in MARKED_BY_FIXTURE.items():
            if used & fixtures:
                item.add_marker(marker)


@pytest.fixture(scope="session")
def kube_bin() -> Path:
    """kube-apiserver and etcd, built once per machine (cached outside the clone)."""
    return testbed_bin()


@pytest.fixture(scope="session")
def cluster_factory(
    tmp_path_factory: pytest.TempPathFactory, kube_bin: Path
) -> Iterator[Callable[[], Cluster]]:
    """Starts another independent cluster on each call; all stop at the end of the session."""
    root = tmp_path_factory.mktemp("clusters")
    counter = itertools.count(1)
    with contextlib.ExitStack() as stack:

        def start() -> Cluster:
            name = f"cluster-{next(counter)}"
            return stack.enter_context(running_cluster(name, root / name, bin_dir=kube_bin))

        yield start


@pytest.fixture(scope="session")
def cluster(cluster_factory: Callable[[], Cluster]) -> Cluster:
    """The session's one shared cluster. Tests use their own namespaces in it."""
    return cluster_factory()


@pytest.fixture(scope="session")
def controllers_bin() -> Path:
    """kube-controller-manager, kube-scheduler and kwok, built once per machine (cached outside
    the clone, apart from kube-apiserver's)."""
    return build_controllers()


@pytest.fixture(scope="session")
def ready_cluster(
    cluster_factory: Callable[[], Cluster], controllers_bin: Path
) -> Iterator[Cluster]:
    """A cluster of its own where readiness is real: kube-controller-manager, kube-scheduler
    and kwok with one fake node run beside it (tests/bed/controllers.py), so Deployments roll
    out, Jobs complete and namespaces finish deleting. Opt-in: ``cluster`` has none of them and
    starts as fast as ever. Tests use their own namespaces in it."""
    started = cluster_factory()
    with running_controllers(started, bin_dir=controllers_bin):
        yield started


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server for one test."""
    with running_redis(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def redis_factory(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """Starts redis-servers for one test (``aof=True`` for appendfsync always)."""
    counter = itertools.count(1)
    with contextlib.ExitStack() as stack:

        def start(*, aof: bool = False) -> RedisServer:
            folder = tmp_path / f"redis-{next(counter)}"
            return stack.enter_context(running_redis(folder, aof=aof))

        yield start


@pytest.fixture
def logs() -> Iterator[LogWatch]:
    """What ``transporter`` logs (INFO and up) in this process, and a way to wait for a line."""
    watch = LogWatch()
    logger = logging.getLogger("transporter")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(watch)
    try:
        yield watch
    finally:
        logger.removeHandler(watch)
        logger.setLevel(level)


@pytest.fixture
def binary() -> Path:
    """``dist/transporter``, the single file of ``make binary``: skipped without it, a failure
    in CI (where ``.ci/run`` builds it before the tests)."""
    if not SINGLE_FILE.is_file():
        if os.environ.get("CI"):
            pytest.fail(
                f"{SINGLE_FILE} is missing: .ci/run must run `make binary` before the tests"
            )
        pytest.skip("no dist/transporter: run `make binary` first")
    return SINGLE_FILE


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
