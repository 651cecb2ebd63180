"""``transporter bundle create|revoke``, on the control plane's host."""

from __future__ import annotations

from transporter.cli.commands import Parser, Subcommands, Values, add_command, add_group
from transporter.cli.flags import Flag, path
from transporter.cli.shared import (
    KEY_FLAGS,
    STORE_FLAGS,
    both_or_neither,
    data_dir_of,
    store_or_default,
)
from transporter.config.admin import BundleCreateConfig, BundleRevokeConfig
from transporter.config.values import parse_agent_id, parse_positive_float

CREATE_FLAGS = (
    Flag("--agent-id", "the agent's id", parse_agent_id, required=True, metavar="ID"),
    Flag(
        "--out",
        "new folder to write the bundle into; - for a tar on stdout",
        path,
        required=True,
        metavar="DIR",
    ),
    Flag(
        "--days",
        "days the agent's certificate is valid",
        parse_positive_float,
        "365",
        metavar="N",
    ),
    *STORE_FLAGS,
    *KEY_FLAGS,
)
REVOKE_FLAGS = (
    Flag("--reason", "why, for the audit log", str, metavar="TEXT"),
    Flag(
        "--unrecorded",
        "revoke a whole serial or fingerprint the store has no record of (issued by an older"
        " version)",
        switch=True,
    ),
    *STORE_FLAGS,
)


def add(commands: Subcommands) -> None:
    actions = add_group(
        commands,
        "bundle",
        "issue and revoke agents' credentials",
        examples=("transporter bundle create --agent-id site-1 --out site-1 --data-dir /srv/tp",),
    )
    add_command(
        actions,
        "create",
        CREATE_FLAGS,
        create_settings,
        "write an agent's bundle (certificate, key, CA, event-signing key) into a folder",
        "Issue a client certificate for one agent id from the control plane's CA and write the"
        " agent's bundle into a new folder, to carry to the agent's host"
        " (transporter agent --bundle DIR).",
        examples=(
            "transporter bundle create --agent-id site-1 --out site-1 --data-dir /srv/tp",
            "transporter bundle create --agent-id site-2 --out site-2 --days 90 \\",
            "    --store redis://redis:6379/0 --ca-cert ca.crt --ca-key ca.key --signing-key s.key",
            "kubectl exec deploy/transporter-cp -- transporter bundle create --agent-id site-3 \\",
            "    --out - > site-3.tar   # from a pod: the bundle as a tar on stdout",
        ),
    )
    revoke = add_command(
        actions,
        "revoke",
        REVOKE_FLAGS,
        revoke_settings,
        "revoke an agent's certificate: refused, and its connection closed, within seconds",
        "Revoke an agent's certificate in the control plane's store (the same --data-dir,"
        " --store and variables as cp). Every control plane on the store refuses it at the next"
        " handshake and closes its open connection within seconds.",
        examples=("transporter bundle revoke 4f0b6a1e --reason 'host lost' --data-dir /srv/tp",),
    )
    revoke.add_argument(
        "certificate", metavar="SERIAL|FINGERPRINT", help="as 'bundle create' printed it"
    )


def create_settings(values: Values, parser: Parser) -> BundleCreateConfig:
    both_or_neither(values, parser, "--ca-cert", "--ca-key")
    return BundleCreateConfig(
        agent_id=values["agent_id"],
        out=values["out"],
        data_dir=data_dir_of(values, parser),
        store=store_or_default(values, parser),
        ca_cert=values["ca_cert"],
        ca_key=values["ca_key"],
        signing_key=values["signing_key"],
        days=values["days"],
    )


def revoke_settings(values: Values, parser: Parser) -> BundleRevokeConfig:
    return BundleRevokeConfig(
        store=store_or_default(values, parser),
        certificate=values["certificate"],
        reason=values["reason"] or "",
        unrecorded=values["unrecorded"],
    )
