"""``transporter agent``: the agent process."""

from __future__ import annotations

import logging
import sys
from functools import partial

import trio

from transporter import runtime
from transporter.agent.kube_runner import KubeRunner
from transporter.agent.policy import DEFAULT_POLICY, Policy, PolicyError, load_policy
from transporter.agent.session import Session, agent_info
from transporter.config import AgentConfig
from transporter.kube import KubeConfigError, KubeTarget, KubeUnavailable

log = logging.getLogger("transporter.agent")

EXIT_USAGE = 2
"""As for the command line's usage errors: a policy file we cannot use."""


async def serve(settings: AgentConfig, policy: Policy, shutdown: trio.Event) -> None:
    async with KubeTarget.connect(settings.kubeconfig) as target:
        log.info("cluster %s: Kubernetes %s", settings.cluster_name, target.server_version)
        log.info("policy: %s", policy.summary())
        info = agent_info(settings.agent_id, settings.cluster_name, settings.labels)
        runner = KubeRunner(target, policy)
        session = Session(info, settings.cp_url, runner, concurrency=settings.concurrency)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(session.run)
            await shutdown.wait()
            nursery.cancel_scope.cancel()


def main(settings: AgentConfig) -> int:
    runtime.configure_logging(debug=settings.debug)
    try:  # before connecting to anything: a bad policy file is a usage error
        policy = DEFAULT_POLICY if settings.policy is None else load_policy(settings.policy)
    except PolicyError as exc:
        print(f"transporter agent: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return runtime.run(partial(serve, settings, policy))
    except BaseException as exc:
        while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
            exc = exc.exceptions[0]
        if isinstance(exc, KubeConfigError | KubeUnavailable):
            print(f"transporter agent: cannot use the cluster: {exc}", file=sys.stderr)
            return 1
        raise
