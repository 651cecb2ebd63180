"""Settings of ``transporter agent``."""

from __future__ import annotations

from pathlib import Path
from typing import Final, Literal

import attrs

from transporter.config.values import Address

MAX_CP_URLS: Final = 16
"""Control-plane URLs an agent may be given: replicas of one control plane, not a fleet."""


@attrs.frozen(kw_only=True)
class AgentConfig:
    """Settings of ``transporter agent``."""

    cp_urls: tuple[str, ...]
    """The control plane's agent channel, ``wss://HOST:PORT/ws``, which the agent dials out to;
    or its replicas' (on one store), dialled one at a time in this order: when a connection
    fails or ends, the next (:mod:`transporter.agent.reconnect`). At most :data:`MAX_CP_URLS`."""

    agent_id: str = ""
    """This agent's identity at the control plane; events are addressed to it. ``""``: the id
    in the bundle's certificate (the only one the control plane accepts from this agent)."""

    bundle: Path | None = None
    """The folder ``transporter bundle create`` wrote: this agent's certificate and key, the
    control plane's CA and its event-signing public key. Required unless ``insecure_plain_ws``."""

    insecure_plain_ws: bool = False
    """Allow a plain ``ws://`` control plane (no TLS, no client certificate). Events are still
    checked against the bundle's signing key when there is a bundle. The agent warns loudly."""

    cluster_name: str = ""
    """A human name for the cluster, shown in ``GET /agents``. Defaults to the agent id."""

    kubeconfig: Path | None = None
    """``None``: in-cluster service account, then ``$KUBECONFIG``, then ``~/.kube/config``."""

    labels: dict[str, str] = attrs.field(factory=dict)
    """Selectable labels (``env=prod``) sent at registration."""

    concurrency: int = 4
    """Events executed at once; more wait (events on the same object wait their turn anyway)."""

    policy: Path | None = None
    """Policy file: which kinds and namespaces the control plane may touch, and which dangerous
    defaults it may ask for. ``None``: the default policy, which refuses whatever could grant
    power beyond the objects themselves (see the README's Agent policy)."""

    state_namespace: str = ""
    """Where the agent keeps what it ran (:mod:`transporter.agent.journal`); events may not
    touch it. ``""``: the namespace of its ServiceAccount when it runs in a pod, else
    ``transporter-system``."""

    impersonate: Literal["", "producer"] = ""
    """``producer``: act as each event's producer (Kubernetes impersonation), so the cluster's
    RBAC decides what each producer may do, behind the policy."""

    metrics_listen: Address | None = None
    """Where to serve ``GET /metrics`` (Prometheus' text format); ``None``: no metrics."""

    debug: bool = False

    log_format: Literal["text", "json"] = "text"
    """How log lines look on stderr: ``text`` for people, ``json`` for collectors."""
