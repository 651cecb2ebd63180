"""``transporter cp``: the control plane's flags, and its settings from them."""

from __future__ import annotations

from transporter.cli.commands import Parser, Subcommands, Values, add_command
from transporter.cli.flags import Flag, non_empty, path
from transporter.cli.shared import (
    DEBUG,
    INSECURE_PLAIN_WS,
    KEY_FLAGS,
    LOG_FORMAT,
    STORE_FLAGS,
    both_or_neither,
    data_dir_of,
    log_format_of,
    store_of,
)
from transporter.config.cp import (
    BUDGET_LEAST,
    BUDGET_MOST,
    HEARTBEAT_LEAST,
    HEARTBEAT_MOST,
    REPLICA_LOOK_LEAST,
    ApiSecurity,
    ChannelSecurity,
    CpConfig,
)
from transporter.config.values import Address, at_least, parse_positive_float, within

FLAGS = (
    Flag("--listen", "HTTP API address", Address.parse, "0.0.0.0:8080", metavar="HOST:PORT"),
    Flag(
        "--agent-listen",
        "agent channel address",
        Address.parse,
        "0.0.0.0:8443",
        metavar="HOST:PORT",
    ),
    *STORE_FLAGS,
    Flag(
        "--insecure-no-auth",
        "serve the HTTP API without tokens: whoever reaches it may submit to every agent and"
        " read everything (a closed test network only)",
        switch=True,
    ),
    *KEY_FLAGS,
    Flag(
        "--tls-san",
        "name agents dial the agent channel by (DNS name or IP), for its certificate beside"
        " localhost, 127.0.0.1 and the host name; repeatable",
        non_empty,
        repeat=True,
        metavar="NAME",
    ),
    INSECURE_PLAIN_WS,
    Flag(
        "--api-tls-cert",
        "certificate (PEM, with its chain) for the HTTPS API (default: issued from the CA for"
        " the agent channel's names)",
        path,
        metavar="FILE",
    ),
    Flag("--api-tls-key", "the key of --api-tls-cert", path, metavar="FILE"),
    Flag(
        "--insecure-plain-http",
        "serve the API over plain HTTP: tokens cross the network readable (a closed test"
        " network, or a TLS proxy on this host, only)",
        switch=True,
    ),
    Flag(
        "--queue-claim-after",
        "queue mode (Redis store): seconds an entry another replica read may stay unsettled"
        " before this one takes it over",
        parse_positive_float,
        "30",
        metavar="SECONDS",
    ),
    Flag(
        "--replica-look",
        "Redis store: seconds between each connection's and each waiting request's look at the"
        " store for what another replica changed, in case its hint was missed (hints do the"
        f" work at once; this is the safety net; at least {REPLICA_LOOK_LEAST:g})",
        at_least(REPLICA_LOOK_LEAST),
        "30",
        metavar="SECONDS",
    ),
    Flag(
        "--heartbeat-interval",
        "seconds between each agent's heartbeats, at least: unhealthy after 2 silent"
        " intervals, the connection taken for dead after 4; longer for a fleet larger than"
        f" --heartbeat-budget allows ({HEARTBEAT_LEAST:g} to {HEARTBEAT_MOST:g})",
        within(HEARTBEAT_LEAST, HEARTBEAT_MOST),
        "5",
        metavar="SECONDS",
    ),
    Flag(
        "--heartbeat-budget",
        "heartbeats a second taken from the whole fleet (the agents in the store): each is"
        " told the interval at which the fleet sends this many, if longer (each costs a frame"
        " to read: 650 hold 10,000 idle agents in under a tenth of a core;"
        f" {BUDGET_LEAST:g} to {BUDGET_MOST:g})",
        within(BUDGET_LEAST, BUDGET_MOST),
        "650",
        metavar="PER_SECOND",
    ),
    DEBUG,
    LOG_FORMAT,
)


def add(commands: Subcommands) -> None:
    add_command(
        commands,
        "cp",
        FLAGS,
        settings,
        "run the control plane",
        "Run the control plane: the HTTP API producers submit to (and /healthz, /readyz) and"
        " the agent channel agents dial. Its state (the embedded SQLite store, its CA and"
        " event-signing key) lives in --data-dir; several replicas share a Redis --store.",
        examples=(
            "transporter cp --data-dir /var/lib/transporter",
            "transporter cp --data-dir /data --tls-san cp.example.com   # a read-only root",
            "TRANSPORTER_STORE=redis://:PASSWORD@redis:6379/0 transporter cp --data-dir /data",
        ),
    )


def settings(values: Values, parser: Parser) -> CpConfig:
    data_dir = data_dir_of(values, parser)
    both_or_neither(values, parser, "--ca-cert", "--ca-key")
    both_or_neither(values, parser, "--api-tls-cert", "--api-tls-key")
    if values["insecure_plain_http"] and values["api_tls_cert"] is not None:
        parser.error("--insecure-plain-http serves no TLS: leave out --api-tls-cert")
    return CpConfig(
        listen=values["listen"],
        agent_listen=values["agent_listen"],
        data_dir=data_dir,
        store=store_of(values, parser),
        insecure_no_auth=values["insecure_no_auth"],
        security=ChannelSecurity(
            ca_cert=values["ca_cert"],
            ca_key=values["ca_key"],
            signing_key=values["signing_key"],
            tls_san=tuple(values["tls_san"]),
            insecure_plain_ws=values["insecure_plain_ws"],
        ),
        api=ApiSecurity(
            tls_cert=values["api_tls_cert"],
            tls_key=values["api_tls_key"],
            insecure_plain_http=values["insecure_plain_http"],
        ),
        debug=values["debug"],
        log_format=log_format_of(values),
        queue_claim_after=values["queue_claim_after"],
        replica_look=values["replica_look"],
        heartbeat_interval=values["heartbeat_interval"],
        heartbeat_budget=values["heartbeat_budget"],
    )
