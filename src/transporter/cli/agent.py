"""``transporter agent``: the agent's flags, and its settings from them."""

from __future__ import annotations

from transporter.cli.commands import Parser, Subcommands, Values, add_command
from transporter.cli.flags import Flag, env_of, non_empty, path
from transporter.cli.shared import DEBUG, INSECURE_PLAIN_WS, LOG_FORMAT, log_format_of
from transporter.config.agent import MAX_CP_URLS, AgentConfig
from transporter.config.values import (
    Address,
    parse_agent_id,
    parse_label,
    parse_namespace,
    parse_positive_int,
    parse_ws_url,
)

FLAGS = (
    Flag(
        "--bundle",
        "folder from 'transporter bundle create': certificate, key, CA, event-signing key",
        path,
        metavar="DIR",
    ),
    Flag(
        "--agent-id",
        "this agent's id (default: the one in the bundle's certificate)",
        parse_agent_id,
        metavar="ID",
    ),
    Flag(
        "--cluster-name",
        "human name of this cluster (default: the agent id)",
        non_empty,
        metavar="NAME",
    ),
    Flag(
        "--cp-url",
        "control plane agent channel, wss://HOST:PORT/ws; repeatable for replicas of one"
        f" control plane (at most {MAX_CP_URLS}), dialled one at a time, the next when a"
        " connection fails",
        parse_ws_url,
        required=True,
        repeat=True,
        metavar="URL",
    ),
    INSECURE_PLAIN_WS,
    Flag(
        "--kubeconfig",
        "kubeconfig file (default: in-cluster, $KUBECONFIG, ~/.kube/config)",
        path,
        metavar="PATH",
    ),
    Flag("--label", "agent label, repeatable", parse_label, repeat=True, metavar="K=V"),
    Flag("--concurrency", "events executed at once", parse_positive_int, "4", metavar="N"),
    Flag(
        "--policy",
        "policy file: what the control plane may touch (default: refuse whatever could grant"
        " power beyond the objects themselves: see the README's Agent policy)",
        path,
        metavar="FILE",
    ),
    Flag(
        "--state-namespace",
        "namespace where the agent keeps what it ran, which events may not touch (default: its"
        " ServiceAccount's in a pod, else transporter-system)",
        parse_namespace,
        metavar="NAME",
    ),
    Flag(
        "--impersonate",
        "producer: act as each event's producer (user transporter:<created_by>, group"
        " transporter:producers), so the cluster's RBAC decides what each may do",
        str,
        choices=("producer",),
    ),
    Flag(
        "--metrics-listen",
        "serve Prometheus metrics at http://HOST:PORT/metrics (default: off)",
        Address.parse,
        metavar="HOST:PORT",
    ),
    DEBUG,
    LOG_FORMAT,
)


def add(commands: Subcommands) -> None:
    add_command(
        commands,
        "agent",
        FLAGS,
        settings,
        "run an agent inside a cluster",
        "Run an agent: it dials out to the control plane's agent channel and keeps the"
        " connection, judges each event by its policy, applies it with server-side apply and"
        " reports every phase. Its id is the one in its bundle's certificate.",
        examples=(
            "transporter agent --bundle site-1 --cp-url wss://cp.example:8443/ws",
            "transporter agent --bundle /etc/transporter/bundle --cp-url wss://cp:8443/ws \\",
            "    --policy /etc/transporter/policy.yaml --label env=prod",
            "transporter agent --bundle site-1 --cp-url wss://cp-1:8443/ws \\",
            "    --cp-url wss://cp-2:8443/ws",
        ),
    )


def settings(values: Values, parser: Parser) -> AgentConfig:
    urls = cp_urls(values["cp_url"], parser)
    plain = [url for url in urls if url.startswith("ws://")]
    if plain and not values["insecure_plain_ws"]:
        which = f" ({plain[0]})" if len(urls) > 1 else ""
        parser.error(
            f"--cp-url{which}: ws:// is plain, unauthenticated WebSocket; use wss://, or give"
            " --insecure-plain-ws to allow it"
        )
    if values["bundle"] is None and not (len(plain) == len(urls) and values["insecure_plain_ws"]):
        parser.error(
            f"--bundle is required (or set {env_of('--bundle')}): the folder"
            " 'transporter bundle create' wrote for this agent"
        )
    if values["bundle"] is None and values["agent_id"] is None:
        parser.error("--agent-id is required without --bundle")
    return AgentConfig(
        agent_id=values["agent_id"] or "",
        cluster_name=values["cluster_name"] or values["agent_id"] or "",
        bundle=values["bundle"],
        insecure_plain_ws=values["insecure_plain_ws"],
        cp_urls=urls,
        kubeconfig=values["kubeconfig"],
        labels=dict(values["label"]),
        concurrency=values["concurrency"],
        policy=values["policy"],
        state_namespace=values["state_namespace"] or "",
        impersonate=values["impersonate"] or "",
        metrics_listen=values["metrics_listen"],
        debug=values["debug"],
        log_format=log_format_of(values),
    )


def cp_urls(given: list[str], parser: Parser) -> tuple[str, ...]:
    """The URLs of ``--cp-url`` (each checked already), bounded and each once; without the
    spaces a comma-separated ``TRANSPORTER_CP_URL`` may hold around them."""
    given = [url.strip() for url in given]
    if len(given) > MAX_CP_URLS:
        parser.error(
            f"--cp-url: {len(given)} URLs given, at most {MAX_CP_URLS} (replicas of one control"
            " plane; many more belong behind a load balancer, as one URL)"
        )
    for at, url in enumerate(given):
        if url in given[:at]:
            parser.error(f"--cp-url: {url} is given twice")
    return tuple(given)
