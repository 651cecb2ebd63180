"""Connecting: where credentials come from, and a server that is gone or silent."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from tests.bed.front import pointed_at
from tests.bed.kube import Cluster
from tests.bed.process import free_port
from tests.bed.relay import Relay
from transporter.kube import KubeConfigError, KubeTarget, KubeUnavailable, RetryPolicy

CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: probe}\n"


async def test_a_missing_kubeconfig_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.kubeconfig"
    with pytest.raises(KubeConfigError, match=f"kubeconfig {missing} does not exist"):
        async with KubeTarget.connect(missing):
            pass


async def test_a_broken_kubeconfig_is_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.kubeconfig"
    broken.write_text("apiVersion: v1\nkind: Config\nclusters: []\n")
    with pytest.raises(KubeConfigError, match=f"^kubeconfig {broken}: current-context is not set$"):
        async with KubeTarget.connect(broken):
            pass


async def test_with_no_credentials_anywhere_the_error_says_what_was_tried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(KubeConfigError) as caught:
        async with KubeTarget.connect(None):
            pass
    message = str(caught.value)
    assert message.startswith("no Kubernetes credentials found; tried in-cluster service account")
    assert f"$KUBECONFIG={tmp_path / 'absent'} (no such file)" in message
    assert f"{tmp_path / '.kube' / 'config'} (no such file)" in message


async def test_kubeconfig_comes_from_the_environment_when_none_is_given(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
    async with KubeTarget.connect(None) as target:
        assert target.source == f"$KUBECONFIG ({cluster.kubeconfig})"
        assert target.server == cluster.server


async def test_a_closed_port_is_unavailable_at_once(cluster: Cluster, tmp_path: Path) -> None:
    server = f"https://127.0.0.1:{free_port()}"
    start = trio.current_time()
    with pytest.raises(KubeUnavailable, match="cannot connect to the API server"):
        async with KubeTarget.connect(pointed_at(cluster, server, tmp_path)):
            pass
    assert trio.current_time() - start < 3.0  # refused at once, not retried


async def test_a_server_whose_port_is_not_a_number_is_a_clear_error(
    cluster: Cluster, tmp_path: Path
) -> None:
    server = "https://127.0.0.1:64x3"
    with pytest.raises(KubeConfigError, match=f"^server {server}: its port is not a number$"):
        async with KubeTarget.connect(pointed_at(cluster, server, tmp_path)):
            pass


async def test_a_silent_server_times_out(cluster: Cluster, tmp_path: Path) -> None:
    relay = Relay(upstream=int(cluster.server.rsplit(":", 1)[1]))
    relay.silent = True
    async with trio.open_nursery() as nursery:
        await nursery.start(relay.serve)
        kubeconfig = pointed_at(cluster, f"https://127.0.0.1:{relay.port}", tmp_path)
        start = trio.current_time()
        with pytest.raises(KubeUnavailable):
            async with KubeTarget.connect(kubeconfig, timeout=0.5):
                pass
        assert trio.current_time() - start < 3.0  # 0.5 s, then 1 s of grace at most
        nursery.cancel_scope.cancel()


async def test_a_server_lost_mid_way_gives_up_after_bounded_retries(
    cluster: Cluster, tmp_path: Path
) -> None:
    relay = Relay(upstream=int(cluster.server.rsplit(":", 1)[1]))
    async with trio.open_nursery() as nursery:
        await nursery.start(relay.serve)
        kubeconfig = pointed_at(cluster, f"https://127.0.0.1:{relay.port}", tmp_path)
        retry = RetryPolicy(attempts=3, first_delay=0.5, jitter=0)
        async with KubeTarget.connect(kubeconfig, timeout=0.5, retry=retry) as target:
            plan = await target.plan([CONFIGMAP])  # works through the relay
            relay.cut(silent=True)
            start = trio.current_time()
            with pytest.raises(KubeUnavailable, match=r"\(gave up after 3 attempts over \S+ s\)$"):
                await target.apply(plan)
            # 3 attempts of at most 0.5 s (+1 s grace each), 0.5 s and 1 s backoff between them.
            assert trio.current_time() - start < 3 * 1.5 + 2.0
        nursery.cancel_scope.cancel()
