"""``transporter agent``: the agent process."""

from __future__ import annotations

import contextlib
import logging
import random
import sys
import time
from functools import partial
from pathlib import Path

import attrs
import trio

from transporter import runtime
from transporter.agent.bundle import Bundle, BundleError, load_bundle
from transporter.agent.journal import Journal
from transporter.agent.kube_runner import KubeRunner
from transporter.agent.metrics import MetricsListenError, start_metrics
from transporter.agent.policy import DEFAULT_POLICY, Policy, PolicyError, load_policy
from transporter.agent.session import Backoff, Session, agent_info
from transporter.config.agent import AgentConfig
from transporter.config.values import ConfigError, parse_namespace
from transporter.kube import KubeConfigError, KubeRejected, KubeTarget, KubeUnavailable

log = logging.getLogger("transporter.agent")

EXIT_USAGE = 2
"""As for the command line's usage errors: a policy file we cannot use."""


START_BACKOFF = Backoff(first=1.0, cap=30.0)
"""Between attempts to reach the cluster's API server at start."""


async def connect_when_reachable(
    stack: contextlib.AsyncExitStack, kubeconfig: Path | None, *, backoff: Backoff = START_BACKOFF
) -> KubeTarget:
    """The cluster's target, once its API server answers: an agent started while it is down
    (a node rebooting, a control-plane upgrade) waits for it instead of exiting. A kubeconfig
    that cannot be used is still an error at once (:class:`KubeConfigError`)."""
    rng = random.Random()  # noqa: S311 - jitter, not secrets
    attempt = 0
    while True:
        try:
            return await stack.enter_async_context(KubeTarget.connect(kubeconfig))
        except KubeUnavailable as exc:
            if attempt == 0:
                log.warning("cannot reach the cluster yet: %s; trying again with backoff", exc)
            else:
                log.debug("cluster still unreachable: %s", exc)
        await trio.sleep(backoff.delay(attempt, rng))
        attempt += 1


SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
DEFAULT_STATE_NAMESPACE = "transporter-system"


def state_namespace(settings: AgentConfig) -> str:
    """``--state-namespace``, else the namespace of the pod's ServiceAccount, else
    :data:`DEFAULT_STATE_NAMESPACE`."""
    if settings.state_namespace:
        return settings.state_namespace
    try:
        return parse_namespace(SERVICE_ACCOUNT_NAMESPACE.read_text().strip())
    except (OSError, ConfigError):
        return DEFAULT_STATE_NAMESPACE


class JournalError(Exception):
    """The agent cannot keep its journal: it would run replayed events again."""


async def open_journal(target: KubeTarget, namespace: str, agent_id: str) -> Journal:
    journal = Journal(target, namespace, agent_id)
    try:
        await journal.load()
    except KubeRejected as exc:
        raise JournalError(
            f"cannot keep what this agent ran in namespace {namespace}: {exc} (let the agent's"
            " account get, list, create, patch and delete ConfigMaps there, and create the"
            " namespace; or give --state-namespace)"
        ) from None
    return journal


async def serve(
    settings: AgentConfig, policy: Policy, bundle: Bundle | None, shutdown: trio.Event
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        metrics = await start_metrics(stack, settings.metrics_listen)
        target = await connect_when_reachable(stack, settings.kubeconfig)
        target.observe(metrics)
        log.info("cluster %s: Kubernetes %s", settings.cluster_name, target.server_version)
        namespace = state_namespace(settings)
        journal = await open_journal(target, namespace, settings.agent_id)
        policy = attrs.evolve(policy, state_namespace=namespace)
        log.info("policy: %s", policy.summary())
        _log_security(settings, bundle)
        info = agent_info(settings.agent_id, settings.cluster_name, settings.labels)
        runner = KubeRunner(target, policy, impersonate=settings.impersonate == "producer")
        if settings.impersonate:
            log.info("events act as their producers (impersonation): the cluster's RBAC decides")
        session = Session(
            info,
            settings.cp_urls,
            runner,
            concurrency=settings.concurrency,
            ssl_context=None if bundle is None else bundle.ssl_context(),
            signing_key=None if bundle is None else bundle.signing_key,
            ledger=journal,
            metrics=metrics,
        )
        async with trio.open_nursery() as nursery:
            nursery.start_soon(session.run)
            await shutdown.wait()
            nursery.cancel_scope.cancel()


def _log_security(settings: AgentConfig, bundle: Bundle | None) -> None:
    if bundle is not None:
        until = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(bundle.not_after))
        log.info(
            "bundle %s: agent %s, certificate serial %s, valid until %s UTC",
            bundle.folder,
            bundle.agent_id,
            bundle.serial,
            until,
        )
        if bundle.not_after < time.time():
            log.error(
                "the bundle's certificate expired at %s UTC: the control plane will refuse it;"
                " ask for a new bundle (transporter bundle create on the control plane's host)",
                until,
            )
    if any(url.startswith("ws://") for url in settings.cp_urls):
        log.warning(
            "AGENT CHANNEL SECURITY IS OFF (--insecure-plain-ws): plain ws:// without TLS; this"
            " agent does not know it talks to the real control plane, and whoever is on the"
            " network between may read and change what goes over it.%s",
            " Events are still checked against the bundle's signing key."
            if bundle is not None
            else " Without a bundle, EVENTS ARE RUN UNCHECKED (no signing key).",
        )


def with_bundle(settings: AgentConfig, bundle: Bundle | None) -> AgentConfig:
    """``settings`` with the bundle's agent id when none was given; :class:`BundleError` when
    the one given is another (the control plane would refuse it)."""
    if bundle is None:
        return settings
    if settings.agent_id and settings.agent_id != bundle.agent_id:
        raise BundleError(
            f"--agent-id {settings.agent_id} is not the agent of bundle {bundle.folder}"
            f" ({bundle.agent_id}): the control plane accepts only {bundle.agent_id} with it"
        )
    return attrs.evolve(
        settings,
        agent_id=bundle.agent_id,
        cluster_name=settings.cluster_name or bundle.agent_id,
    )


def main(settings: AgentConfig) -> int:
    try:  # before connecting to anything: a bad policy file or bundle is a usage error
        policy = DEFAULT_POLICY if settings.policy is None else load_policy(settings.policy)
        bundle = None if settings.bundle is None else load_bundle(settings.bundle)
        settings = with_bundle(settings, bundle)
    except (PolicyError, BundleError) as exc:
        print(f"transporter agent: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    runtime.configure_logging(
        debug=settings.debug, log_format=settings.log_format, fields={"agent_id": settings.agent_id}
    )
    try:
        return runtime.run(partial(serve, settings, policy, bundle), long_lived=True)
    except BaseException as exc:
        while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
            exc = exc.exceptions[0]
        if isinstance(exc, KubeConfigError | KubeUnavailable):
            print(f"transporter agent: cannot use the cluster: {exc}", file=sys.stderr)
            return 1
        if isinstance(exc, JournalError | MetricsListenError):
            print(f"transporter agent: error: {exc}", file=sys.stderr)
            return 1
        raise
