"""An agent started while its cluster's API server cannot be reached waits for it (a node
rebooting, an API server being upgraded) instead of exiting; a real API server behind a relay
that resets connections until it is told to forward them."""

from __future__ import annotations

import contextlib
from pathlib import Path

import trio

from tests.bed.front import pointed_at
from tests.bed.kube import Cluster
from tests.bed.relay import Relay
from transporter.agent.main import connect_when_reachable
from transporter.agent.session import Backoff
from transporter.kube import KubeTarget


async def test_an_agent_started_while_its_cluster_is_down_waits_for_it(
    cluster: Cluster, tmp_path: Path
) -> None:
    relay = Relay(upstream=int(cluster.server.rsplit(":", 1)[1]))
    async with trio.open_nursery() as nursery:
        await nursery.start(relay.serve)
        relay.refuse()
        kubeconfig = pointed_at(cluster, f"https://127.0.0.1:{relay.port}", tmp_path)
        connected: list[KubeTarget] = []
        async with contextlib.AsyncExitStack() as stack:
            async with trio.open_nursery() as starting:

                async def start() -> None:
                    backoff = Backoff(first=0.05, cap=0.2)
                    connected.append(
                        await connect_when_reachable(stack, kubeconfig, backoff=backoff)
                    )

                starting.start_soon(start)
                await relay.wait_refused(3)  # it keeps trying (a version check would exit)
                assert connected == []
                relay.restore()
            (target,) = connected
            assert target.server_version.startswith("v1.")
            assert (await target.plan([CONFIGMAP])).objects  # it works through the relay
        nursery.cancel_scope.cancel()


CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: waited\n  namespace: default\n"
