"""``transporter token create|list|revoke``, on the control plane's host: they open its store
directly (the same --data-dir, --store and variables as ``cp``)."""

from __future__ import annotations

from transporter.cli.commands import Parser, Subcommands, Values, add_command, add_group
from transporter.cli.flags import Flag, checked, checked_by
from transporter.cli.shared import NO_HEADERS, OUTPUT, STORE_FLAGS, store_or_default
from transporter.config.admin import TokenCreateConfig, TokenListConfig, TokenRevokeConfig
from transporter.security import tokens

CREATE_FLAGS = (
    Flag(
        "--name",
        "who the token stands for: its events are created_by token:NAME",
        checked_by(tokens.check_name),
        required=True,
        metavar="NAME",
    ),
    Flag(
        "--role",
        "read: GET endpoints; submit: read and submit events; admin: everything, any agent",
        str,
        required=True,
        choices=tuple(role.value for role in tokens.Role),
    ),
    Flag(
        "--agents",
        "glob pattern of the agents a read or submit token may target ('*': all), repeatable",
        checked_by(tokens.check_pattern),
        repeat=True,
        metavar="GLOB",
    ),
    *STORE_FLAGS,
)
LIST_FLAGS = (*STORE_FLAGS, OUTPUT, NO_HEADERS)
REVOKE_FLAGS = STORE_FLAGS


def add(commands: Subcommands) -> None:
    actions = add_group(
        commands,
        "token",
        "create, list and revoke API tokens",
        examples=(
            "transporter token create --name ci --role submit --agents 'team-a-*' --data-dir DIR",
            "transporter token list -o wide --data-dir DIR",
        ),
    )
    add_command(
        actions,
        "create",
        CREATE_FLAGS,
        create_settings,
        "create an API token; prints it once, on stdout",
        "Create an API token in the control plane's store. The token is printed once, on stdout"
        " (what it is and how to use it on stderr); the store keeps only its SHA-256.",
        examples=(
            "transporter token create --name ops --role admin --data-dir /var/lib/transporter",
            "TOKEN=$(transporter token create --name ci --role submit --agents 'team-a-*' \\",
            "    --data-dir /var/lib/transporter)",
        ),
    )
    add_command(
        actions,
        "list",
        LIST_FLAGS,
        list_settings,
        "list the API tokens, revoked ones included",
        "List the API tokens in the control plane's store: id, name, role, agents, when"
        " created and revoked, and by whom (never the token itself).",
        examples=(
            "transporter token list --data-dir /var/lib/transporter",
            "transporter token list -o yaml --store redis://redis:6379/0",
        ),
    )
    revoke = add_command(
        actions,
        "revoke",
        REVOKE_FLAGS,
        revoke_settings,
        "revoke an API token: refused at once by every control plane on the store",
        examples=("transporter token revoke 3f9c2a71b0de --data-dir /var/lib/transporter",),
    )
    revoke.add_argument("id", help="the token's id (`token list`; tpt_<id>_…)")


def create_settings(values: Values, parser: Parser) -> TokenCreateConfig:
    store = store_or_default(values, parser)
    role = tokens.Role(values["role"])
    try:
        agents = tokens.check_agents(role, tuple(values["agents"]))
    except ValueError as exc:
        parser.error(f"--agents: {exc}")
    return TokenCreateConfig(store=store, name=values["name"], role=role.value, agents=agents)


def list_settings(values: Values, parser: Parser) -> TokenListConfig:
    return TokenListConfig(
        store=store_or_default(values, parser),
        output=values["output"],
        no_headers=values["no_headers"],
    )


def revoke_settings(values: Values, parser: Parser) -> TokenRevokeConfig:
    store = store_or_default(values, parser)
    token_id = checked(checked_by(tokens.check_id), values["id"], "ID", parser)
    return TokenRevokeConfig(store=store, token_id=token_id)
