"""What every ``transporter produce`` command takes: how to reach the control plane (its URL,
CA and token) and how to show what comes back, with the one check of a token's transport."""

from __future__ import annotations

from typing import Any

from transporter.cli.commands import Parser, Values
from transporter.cli.flags import Flag, path
from transporter.cli.shared import LOG_FORMAT, log_format_of
from transporter.config.values import (
    ConfigError,
    check_token_transport,
    parse_http_url,
    parse_positive_float,
    parse_token,
)

HTTP_CP_URL = Flag(
    "--cp-url",
    "control plane HTTP API",
    parse_http_url,
    "https://localhost:8080",
    metavar="URL",
)
CA_CERT = Flag(
    "--ca-cert",
    "CA that issued the control plane's certificate (its DATA_DIR/ca.crt; default: the"
    " system's trust store)",
    path,
    metavar="FILE",
)
TOKEN = Flag(
    "--token",
    "API token (tpt_…), sent as 'Authorization: Bearer'; the variable keeps it out of the"
    " process list",
    parse_token,
    metavar="TOKEN",
)
WAIT_TIMEOUT = Flag(
    "--timeout",
    "seconds --wait follows the event or rollout",
    parse_positive_float,
    "300",
    metavar="SECONDS",
)
MANIFEST = Flag(
    "--manifest",
    "YAML file or folder of YAML files, repeatable",
    path,
    required=True,
    repeat=True,
    metavar="FILE|DIR",
)
"""What to submit or plan: ``produce k8s`` and ``produce plan`` take it alike."""
REACH_FLAGS = (TOKEN, CA_CERT, LOG_FORMAT)


def reach_and_show(values: Values, parser: Parser) -> dict[str, Any]:
    """The settings every producer command shares (:class:`config.produce.Reach`): how to
    reach the control plane, how long to follow and how to show what comes back. A token goes
    in cleartext only to this host."""
    try:
        check_token_transport(values["cp_url"], values["token"])
    except ConfigError as exc:
        parser.error(f"--cp-url: {exc}")
    names = ("cp_url", "token", "ca_cert", "timeout", "output", "no_headers")
    shown = {name: values[name] for name in names if name in values}  # approve: no --timeout
    return shown | {"log_format": log_format_of(values)}
