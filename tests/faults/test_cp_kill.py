"""kill -9 of the control plane at random moments while 500 events stream in, 20 times, on
each store: every event answered 202 completes, and the API server holds exactly the objects
the events made (no missing ConfigMap, no extra one, each with its event's data)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.bed.crashloop import CrashSettings, cp_kill_cycles
from tests.bed.kube import Cluster
from tests.bed.redis import RedisServer

pytestmark = [
    # About a minute each on 2 idle cores; room for a machine busy with other test runs.
    pytest.mark.timeout(600),
]

SETTINGS = CrashSettings(cycles=20, events=500)


def test_nothing_is_lost_when_the_control_plane_on_sqlite_is_killed(
    cluster: Cluster, tmp_path: Path
) -> None:
    report = cp_kill_cycles(
        store_name="sqlite",
        store=None,
        kubeconfig=cluster.kubeconfig,
        work=tmp_path,
        settings=SETTINGS,
    )
    print(report.describe())
    assert report.ok, report.describe()


def test_nothing_is_lost_when_the_control_plane_on_redis_is_killed(
    cluster: Cluster, redis_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    server = redis_factory(aof=True)  # appendonly yes, appendfsync always
    report = cp_kill_cycles(
        store_name="redis",
        store=server.url,
        kubeconfig=cluster.kubeconfig,
        work=tmp_path,
        settings=SETTINGS,
    )
    print(report.describe())
    assert report.ok, report.describe()
