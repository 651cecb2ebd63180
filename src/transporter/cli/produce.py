"""``transporter produce k8s|get``: the producer's flags, and its settings from them."""

from __future__ import annotations

from typing import Any

from transporter.cli.commands import Parser, Subcommands, Values, add_command, add_group
from transporter.cli.flags import Flag, path
from transporter.cli.shared import LOG_FORMAT, NO_HEADERS, OUTPUT, log_format_of
from transporter.config.produce import QUERY_KINDS, ProduceConfig, QueryConfig
from transporter.config.values import (
    ConfigError,
    check_token_transport,
    parse_agent_id,
    parse_http_url,
    parse_positive_float,
    parse_positive_int,
    parse_token,
)
from transporter.protocol.model import EventState

_HTTP_CP_URL = Flag(
    "--cp-url",
    "control plane HTTP API",
    parse_http_url,
    "https://localhost:8080",
    metavar="URL",
)
_CA_CERT = Flag(
    "--ca-cert",
    "CA that issued the control plane's certificate (its DATA_DIR/ca.crt; default: the"
    " system's trust store)",
    path,
    metavar="FILE",
)
_TOKEN = Flag(
    "--token",
    "API token (tpt_…), sent as 'Authorization: Bearer'; the variable keeps it out of the"
    " process list",
    parse_token,
    metavar="TOKEN",
)

K8S_FLAGS = (
    Flag("--agent", "target agent id", parse_agent_id, required=True, metavar="ID"),
    Flag(
        "--manifest",
        "YAML file or folder of YAML files, repeatable",
        path,
        required=True,
        repeat=True,
        metavar="FILE|DIR",
    ),
    _HTTP_CP_URL,
    Flag("--mode", "how to submit", str, "http", choices=("http",)),
    Flag("--wait", "follow the event's phases until it ends", switch=True),
    Flag(
        "--timeout",
        "seconds --wait follows the event",
        parse_positive_float,
        "300",
        metavar="SECONDS",
    ),
    OUTPUT,
    NO_HEADERS,
    Flag("--delete", "delete the objects the manifests name instead of applying them", switch=True),
    Flag(
        "--ttl",
        "seconds before the event expires (default: the control plane's, 24 h)",
        parse_positive_int,
        metavar="SECONDS",
    ),
    _TOKEN,
    _CA_CERT,
    LOG_FORMAT,
)

GET_FLAGS = (
    _HTTP_CP_URL,
    Flag("--agent", "only events for this agent", parse_agent_id, metavar="ID"),
    Flag(
        "--state",
        "only events in this state",
        str,
        choices=tuple(state.value for state in EventState),
    ),
    Flag("--limit", "at most this many events", parse_positive_int, "50", metavar="N"),
    Flag("--watch", "event: follow it until it ends", switch=True, short="-w"),
    Flag(
        "--timeout",
        "seconds --watch follows the event",
        parse_positive_float,
        "300",
        metavar="SECONDS",
    ),
    OUTPUT,
    NO_HEADERS,
    _TOKEN,
    _CA_CERT,
    LOG_FORMAT,
)


def add(commands: Subcommands) -> None:
    kinds = add_group(
        commands,
        "produce",
        "submit events and follow them",
        dest="kind",
        examples=(
            "transporter produce k8s --agent site-1 --manifest app/ --wait",
            "transporter produce get events -o wide",
        ),
    )
    add_command(
        kinds,
        "k8s",
        K8S_FLAGS,
        k8s_settings,
        "apply Kubernetes manifests through an agent",
        "Submit one event that applies (or, with --delete, deletes) the manifests' objects"
        " on one agent's cluster, and print its id; with --wait, show its phases as they"
        " happen and each object's result. Exit 0 completed, 1 failed, expired or not"
        " finished, 2 refused.",
        examples=(
            "export TRANSPORTER_TOKEN=tpt_… TRANSPORTER_CA_CERT=ca.crt",
            "transporter produce k8s --agent site-1 --manifest app/ --wait",
            "transporter produce k8s --agent site-1 --manifest app/ --delete --wait -o json",
        ),
    )
    get = add_command(
        kinds,
        "get",
        GET_FLAGS,
        get_settings,
        "show events or agents, like kubectl get",
        "Show the events (newest first) or the agents the token may see, or one of them;"
        " --watch follows one event until it ends.",
        examples=(
            "transporter produce get events --agent site-1 --state failed",
            "transporter produce get event 6f1c…  --watch",
            "transporter produce get agents -o yaml",
        ),
    )
    get.add_argument("what", choices=QUERY_KINDS, help="events, event ID, agents, agent ID")
    get.add_argument("name", nargs="?", help="the event or agent id")


def k8s_settings(values: Values, parser: Parser) -> ProduceConfig:
    return ProduceConfig(
        agent=values["agent"],
        manifests=tuple(values["manifest"]),
        mode=values["mode"],
        wait=values["wait"],
        delete=values["delete"],
        ttl=values["ttl"],
        **_reach_and_show(values, parser),
    )


def get_settings(values: Values, parser: Parser) -> QueryConfig:
    what, name = values["what"], values["name"]
    single = what in ("event", "agent")
    if single and not name:
        parser.error(f"get {what} needs an id")
    if not single and name:
        parser.error(f"get {what} takes no id (did you mean {what[:-1]}?)")
    return QueryConfig(
        what=what,
        name=name,
        agent=values["agent"],
        state=values["state"],
        limit=values["limit"],
        watch=values["watch"],
        **_reach_and_show(values, parser),
    )


def _reach_and_show(values: Values, parser: Parser) -> dict[str, Any]:
    """The settings both commands share: how to reach the control plane, how long to follow an
    event and how to show what comes back. A token goes in cleartext only to this host."""
    try:
        check_token_transport(values["cp_url"], values["token"])
    except ConfigError as exc:
        parser.error(f"--cp-url: {exc}")
    names = ("cp_url", "token", "ca_cert", "timeout", "output", "no_headers")
    return {name: values[name] for name in names} | {"log_format": log_format_of(values)}
