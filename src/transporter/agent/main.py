"""``transporter agent``: the agent process."""

from __future__ import annotations

import logging
import sys
from functools import partial

import trio

from transporter import runtime
from transporter.agent.kube_runner import KubeRunner
from transporter.agent.session import Session, agent_info
from transporter.config import AgentConfig
from transporter.kube import KubeConfigError, KubeTarget, KubeUnavailable

log = logging.getLogger("transporter.agent")


async def serve(settings: AgentConfig, shutdown: trio.Event) -> None:
    async with KubeTarget.connect(settings.kubeconfig) as target:
        log.info("cluster %s: Kubernetes %s", settings.cluster_name, target.server_version)
        info = agent_info(settings.agent_id, settings.cluster_name, settings.labels)
        session = Session(
            info, settings.cp_url, KubeRunner(target), concurrency=settings.concurrency
        )
        async with trio.open_nursery() as nursery:
            nursery.start_soon(session.run)
            await shutdown.wait()
            nursery.cancel_scope.cancel()


def main(settings: AgentConfig) -> int:
    runtime.configure_logging(debug=settings.debug)
    try:
        return runtime.run(partial(serve, settings))
    except BaseException as exc:
        while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
            exc = exc.exceptions[0]
        if isinstance(exc, KubeConfigError | KubeUnavailable):
            print(f"transporter agent: cannot use the cluster: {exc}", file=sys.stderr)
            return 1
        raise
