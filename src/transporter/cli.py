"""The ``transporter`` command: ``cp``, ``agent`` and ``produce``, ``audit verify``, ``token`` and
``bundle``.

This module parses flags into the typed settings of :mod:`transporter.config` and hands them to
the role. It imports no heavy library at module level, so that ``--version`` and ``--help`` start
fast from the single-file build; each role's libraries are imported when the role runs.

Every flag can also come from an environment variable ``TRANSPORTER_<FLAG>`` (``--agent-id`` is
``TRANSPORTER_AGENT_ID``); a flag on the command line wins over the variable. Repeatable flags take
a comma-separated list from their variable.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import attrs

from transporter import __version__, config
from transporter.config import ConfigError
from transporter.protocol.model import EventState
from transporter.security import tokens

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (no usage dump) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


@attrs.frozen
class _Flag:
    """One option: its flag, how its text becomes a value, and its environment variable."""

    name: str
    help: str
    parse: Callable[[str], Any] = str
    default: Any = None
    required: bool = False
    repeat: bool = False
    switch: bool = False
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    short: str | None = None

    @property
    def dest(self) -> str:
        return self.name.removeprefix("--").replace("-", "_")

    @property
    def env(self) -> str:
        return "TRANSPORTER_" + self.dest.upper()

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        where = f" [env {self.env}]"
        if self.default is not None and not self.switch:
            where += f" (default: {self.default})"
        names = [self.short, self.name] if self.short else [self.name]
        if self.switch:
            parser.add_argument(*names, action="store_const", const=True, help=self.help + where)
        else:
            parser.add_argument(
                *names,
                action="append" if self.repeat else "store",
                choices=self.choices,
                metavar=self.metavar,
                help=self.help + where,
            )

    def resolve(self, given: Any, parser: argparse.ArgumentParser) -> Any:
        """The value from the command line, else the environment, else the default; parsed."""
        source = self.name
        if given is None and self.env in os.environ:
            text = os.environ[self.env]
            source = self.env
            if self.switch:
                given = _checked(config.parse_bool, text, source, parser)
            elif self.repeat:
                given = [item for item in text.split(",") if item.strip()]
            else:
                given = text
            if self.choices and not self.switch and given not in self.choices:
                parser.error(f"{source}: {given!r} is not one of {', '.join(self.choices)}")
        if given is None:
            if self.required:
                parser.error(f"{self.name} is required (or set {self.env})")
            if self.switch:
                return bool(self.default)
            if self.default is None:
                return [] if self.repeat else None
            given, source = self.default, f"default of {self.name}"
        if self.switch:
            return bool(given)
        if self.repeat:
            return [_checked(self.parse, item, source, parser) for item in given]
        return _checked(self.parse, given, source, parser)


def _checked(
    parse: Callable[[str], Any], text: str, source: str, parser: argparse.ArgumentParser
) -> Any:
    try:
        return parse(text)
    except ConfigError as exc:
        parser.error(f"{source}: {exc}")


def _path(text: str) -> Path:
    if not text:
        raise ConfigError("an empty path")
    return Path(text).expanduser()


def _non_empty(text: str) -> str:
    if not text.strip():
        raise ConfigError("must not be empty")
    return text


def _checked_by(check: Callable[[str], str]) -> Callable[[str], str]:
    """A parser from one of the protocol's checks (which raise ValueError)."""

    def parse(text: str) -> str:
        try:
            return check(text)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    return parse


_DEBUG = _Flag("--debug", "log at debug level", switch=True)

# Where the control plane keeps its state: the same flags (and variables) for `cp` and for the
# commands that open its store.
_STORE_FLAGS = (
    _Flag(
        "--data-dir",
        "the control plane's data folder: its embedded store, CA and keys",
        _path,
        metavar="DIR",
    ),
    _Flag(
        "--store",
        "state store URL: sqlite:///PATH, redis://[USER:PASSWORD@]HOST:PORT/DB or rediss://..."
        " for TLS (default: SQLite in --data-dir)",
        config.StoreSpec.parse,
        metavar="URL",
    ),
    _Flag(
        "--redis-addr",
        "shorthand for --store redis://HOST:PORT/0",
        config.Address.parse,
        metavar="HOST:PORT",
    ),
)

# The control plane's CA and event-signing key: the same flags for `cp` and `bundle create`.
_KEY_FLAGS = (
    _Flag(
        "--ca-cert",
        "CA certificate for the agent channel (default: ca.crt in --data-dir, made at first start)",
        _path,
        metavar="FILE",
    ),
    _Flag("--ca-key", "the CA's private key (with --ca-cert)", _path, metavar="FILE"),
    _Flag(
        "--signing-key",
        "Ed25519 key events are signed with (default: event-signing.key in --data-dir, made at"
        " first start)",
        _path,
        metavar="FILE",
    ),
)

_INSECURE_PLAIN_WS = _Flag(
    "--insecure-plain-ws",
    "agent channel over plain ws://, without TLS or client certificates (a closed test network"
    " only)",
    switch=True,
)

CP_FLAGS = (
    _Flag(
        "--listen", "HTTP API address", config.Address.parse, "0.0.0.0:8080", metavar="HOST:PORT"
    ),
    _Flag(
        "--agent-listen",
        "agent channel address",
        config.Address.parse,
        "0.0.0.0:8443",
        metavar="HOST:PORT",
    ),
    *_STORE_FLAGS,
    _Flag(
        "--insecure-no-auth",
        "serve the HTTP API without tokens: whoever reaches it may submit to every agent and"
        " read everything (a closed test network only)",
        switch=True,
    ),
    *_KEY_FLAGS,
    _Flag(
        "--tls-san",
        "name agents dial the agent channel by (DNS name or IP), for its certificate beside"
        " localhost, 127.0.0.1 and the host name; repeatable",
        _non_empty,
        repeat=True,
        metavar="NAME",
    ),
    _INSECURE_PLAIN_WS,
    _Flag(
        "--api-tls-cert",
        "certificate (PEM, with its chain) for the HTTPS API (default: issued from the CA for"
        " the agent channel's names)",
        _path,
        metavar="FILE",
    ),
    _Flag("--api-tls-key", "the key of --api-tls-cert", _path, metavar="FILE"),
    _Flag(
        "--insecure-plain-http",
        "serve the API over plain HTTP: tokens cross the network readable (a closed test"
        " network, or a TLS proxy on this host, only)",
        switch=True,
    ),
    _DEBUG,
)

AUDIT_VERIFY_FLAGS = _STORE_FLAGS

BUNDLE_CREATE_FLAGS = (
    _Flag("--agent-id", "the agent's id", config.parse_agent_id, required=True, metavar="ID"),
    _Flag("--out", "new folder to write the bundle into", _path, required=True, metavar="DIR"),
    _Flag(
        "--days",
        "days the agent's certificate is valid",
        config.parse_positive_float,
        "365",
        metavar="N",
    ),
    *_STORE_FLAGS,
    *_KEY_FLAGS,
)
BUNDLE_REVOKE_FLAGS = (
    _Flag("--reason", "why, for the audit log", str, metavar="TEXT"),
    _Flag(
        "--unrecorded",
        "revoke a whole serial or fingerprint the store has no record of (issued by an older"
        " version)",
        switch=True,
    ),
    *_STORE_FLAGS,
)

AGENT_FLAGS = (
    _Flag(
        "--bundle",
        "folder from 'transporter bundle create': certificate, key, CA, event-signing key",
        _path,
        metavar="DIR",
    ),
    _Flag(
        "--agent-id",
        "this agent's id (default: the one in the bundle's certificate)",
        config.parse_agent_id,
        metavar="ID",
    ),
    _Flag(
        "--cluster-name",
        "human name of this cluster (default: the agent id)",
        _non_empty,
        metavar="NAME",
    ),
    _Flag(
        "--cp-url",
        "control plane agent channel, wss://HOST:PORT/ws",
        config.parse_ws_url,
        required=True,
        metavar="URL",
    ),
    _INSECURE_PLAIN_WS,
    _Flag(
        "--kubeconfig",
        "kubeconfig file (default: in-cluster, $KUBECONFIG, ~/.kube/config)",
        _path,
        metavar="PATH",
    ),
    _Flag("--label", "agent label, repeatable", config.parse_label, repeat=True, metavar="K=V"),
    _Flag("--concurrency", "events executed at once", config.parse_positive_int, "4", metavar="N"),
    _Flag(
        "--policy",
        "policy file: what the control plane may touch (default: refuse whatever could grant"
        " power beyond the objects themselves: see the README's Agent policy)",
        _path,
        metavar="FILE",
    ),
    _Flag(
        "--state-namespace",
        "namespace where the agent keeps what it ran, which events may not touch (default: its"
        " ServiceAccount's in a pod, else transporter-system)",
        config.parse_namespace,
        metavar="NAME",
    ),
    _Flag(
        "--impersonate",
        "producer: act as each event's producer (user transporter:<created_by>, group"
        " transporter:producers), so the cluster's RBAC decides what each may do",
        str,
        choices=("producer",),
    ),
    _DEBUG,
)

_HTTP_CP_URL = _Flag(
    "--cp-url",
    "control plane HTTP API",
    config.parse_http_url,
    "https://localhost:8080",
    metavar="URL",
)
_PRODUCE_CA = _Flag(
    "--ca-cert",
    "CA that issued the control plane's certificate (its DATA_DIR/ca.crt; default: the"
    " system's trust store)",
    _path,
    metavar="FILE",
)
_OUTPUT = _Flag("--output", "output format", str, "text", choices=("text", "json"), short="-o")
_TOKEN = _Flag(
    "--token",
    "API token (tpt_…), sent as 'Authorization: Bearer'; the variable keeps it out of the"
    " process list",
    config.parse_token,
    metavar="TOKEN",
)

PRODUCE_K8S_FLAGS = (
    _Flag("--agent", "target agent id", config.parse_agent_id, required=True, metavar="ID"),
    _Flag(
        "--manifest",
        "YAML file or folder of YAML files, repeatable",
        _path,
        required=True,
        repeat=True,
        metavar="FILE|DIR",
    ),
    _HTTP_CP_URL,
    _Flag("--mode", "how to submit", str, "http", choices=("http",)),
    _Flag("--wait", "follow the event's phases until it ends", switch=True),
    _Flag(
        "--timeout",
        "seconds --wait follows the event",
        config.parse_positive_float,
        "300",
        metavar="SECONDS",
    ),
    _OUTPUT,
    _Flag(
        "--delete", "delete the objects the manifests name instead of applying them", switch=True
    ),
    _Flag(
        "--ttl",
        "seconds before the event expires (default: the control plane's, 24 h)",
        config.parse_positive_int,
        metavar="SECONDS",
    ),
    _TOKEN,
    _PRODUCE_CA,
)

PRODUCE_GET_FLAGS = (
    _HTTP_CP_URL,
    _Flag("--agent", "only events for this agent", config.parse_agent_id, metavar="ID"),
    _Flag(
        "--state",
        "only events in this state",
        str,
        choices=tuple(state.value for state in EventState),
    ),
    _Flag("--limit", "at most this many events", config.parse_positive_int, "50", metavar="N"),
    _Flag("--watch", "event: follow it until it ends", switch=True, short="-w"),
    _Flag(
        "--timeout",
        "seconds --watch follows the event",
        config.parse_positive_float,
        "300",
        metavar="SECONDS",
    ),
    _OUTPUT,
    _TOKEN,
    _PRODUCE_CA,
)


TOKEN_CREATE_FLAGS = (
    _Flag(
        "--name",
        "who the token stands for: its events are created_by token:NAME",
        _checked_by(tokens.check_name),
        required=True,
        metavar="NAME",
    ),
    _Flag(
        "--role",
        "read: GET endpoints; submit: read and submit events; admin: everything, any agent",
        str,
        required=True,
        choices=tuple(role.value for role in tokens.Role),
    ),
    _Flag(
        "--agents",
        "glob pattern of the agents a read or submit token may target ('*': all), repeatable",
        _checked_by(tokens.check_pattern),
        repeat=True,
        metavar="GLOB",
    ),
    *_STORE_FLAGS,
)
TOKEN_LIST_FLAGS = (*_STORE_FLAGS, _OUTPUT)
TOKEN_REVOKE_FLAGS = _STORE_FLAGS


def _flags_of(flags: Sequence[_Flag], parser: argparse.ArgumentParser) -> None:
    for flag in flags:
        flag.add_to(parser)


def build_parser() -> tuple[_Parser, dict[str, tuple[_Parser, Sequence[_Flag]]]]:
    root = _Parser(
        prog="transporter",
        description="Manage Kubernetes resources on clusters whose agents dial out to you.",
    )
    root.add_argument("--version", action="version", version=f"transporter {__version__}")
    commands = root.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    table: dict[str, tuple[_Parser, Sequence[_Flag]]] = {}

    cp = commands.add_parser("cp", help="run the control plane")
    _flags_of(CP_FLAGS, cp)
    table["cp"] = (cp, CP_FLAGS)

    agent = commands.add_parser("agent", help="run an agent inside a cluster")
    _flags_of(AGENT_FLAGS, agent)
    table["agent"] = (agent, AGENT_FLAGS)

    produce = commands.add_parser("produce", help="submit events and follow them")
    kinds = produce.add_subparsers(dest="kind", metavar="KIND", parser_class=_Parser)
    kinds.required = True
    k8s = kinds.add_parser("k8s", help="apply Kubernetes manifests through an agent")
    _flags_of(PRODUCE_K8S_FLAGS, k8s)
    table["produce k8s"] = (k8s, PRODUCE_K8S_FLAGS)
    get = kinds.add_parser("get", help="show events or agents, like kubectl get")
    get.add_argument("what", choices=config.QUERY_KINDS, help="events, event ID, agents, agent ID")
    get.add_argument("name", nargs="?", help="the event or agent id")
    _flags_of(PRODUCE_GET_FLAGS, get)
    table["produce get"] = (get, PRODUCE_GET_FLAGS)

    audit = commands.add_parser("audit", help="check the control plane's audit log")
    actions = audit.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    actions.required = True
    verify = actions.add_parser(
        "verify",
        help="check the audit log's hash chain; exit 0 intact, 1 a record does not match",
        description="Walk the control plane's audit log oldest first and recompute its hash"
        " chain. Prints the number of records and the last one's hash when every record"
        " matches (exit 0); else the first record that does not, and why (exit 1).",
    )
    _flags_of(AUDIT_VERIFY_FLAGS, verify)
    table["audit verify"] = (verify, AUDIT_VERIFY_FLAGS)
    _token_parsers(commands, table)
    _bundle_parsers(commands, table)
    return root, table


def _bundle_parsers(
    commands: argparse._SubParsersAction[_Parser], table: dict[str, tuple[_Parser, Sequence[_Flag]]]
) -> None:
    """``transporter bundle create|revoke``, on the control plane's host."""
    bundle = commands.add_parser("bundle", help="issue and revoke agents' credentials")
    actions = bundle.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    actions.required = True
    create = actions.add_parser(
        "create",
        help="write an agent's bundle (certificate, key, CA, event-signing key) into a folder",
        description="Issue a client certificate for one agent id from the control plane's CA"
        " and write the agent's bundle into a new folder, to carry to the agent's host"
        " (transporter agent --bundle DIR).",
    )
    _flags_of(BUNDLE_CREATE_FLAGS, create)
    table["bundle create"] = (create, BUNDLE_CREATE_FLAGS)
    revoke = actions.add_parser(
        "revoke",
        help="revoke an agent's certificate: refused, and its connection closed, within seconds",
        description="Revoke an agent's certificate in the control plane's store (the same"
        " --data-dir, --store and variables as cp). Every control plane on the store refuses it"
        " at the next handshake and closes its open connection within seconds.",
    )
    revoke.add_argument(
        "certificate", metavar="SERIAL|FINGERPRINT", help="as 'bundle create' printed it"
    )
    _flags_of(BUNDLE_REVOKE_FLAGS, revoke)
    table["bundle revoke"] = (revoke, BUNDLE_REVOKE_FLAGS)


def _token_parsers(
    commands: argparse._SubParsersAction[_Parser], table: dict[str, tuple[_Parser, Sequence[_Flag]]]
) -> None:
    """``transporter token create|list|revoke``, on the control plane's host: they open its
    store directly (the same --data-dir, --store and variables as ``cp``)."""
    token = commands.add_parser("token", help="create, list and revoke API tokens")
    actions = token.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    actions.required = True
    create = actions.add_parser(
        "create",
        help="create an API token; prints it once, on stdout",
        description="Create an API token in the control plane's store. The token is printed"
        " once, on stdout (what it is and how to use it on stderr); the store keeps only its"
        " SHA-256.",
    )
    _flags_of(TOKEN_CREATE_FLAGS, create)
    table["token create"] = (create, TOKEN_CREATE_FLAGS)
    listing = actions.add_parser("list", help="list the API tokens, revoked ones included")
    _flags_of(TOKEN_LIST_FLAGS, listing)
    table["token list"] = (listing, TOKEN_LIST_FLAGS)
    revoke = actions.add_parser(
        "revoke", help="revoke an API token: refused at once by every control plane on the store"
    )
    revoke.add_argument("id", help="the token's id (`token list`; tpt_<id>_…)")
    _flags_of(TOKEN_REVOKE_FLAGS, revoke)
    table["token revoke"] = (revoke, TOKEN_REVOKE_FLAGS)


def _resolve(
    namespace: argparse.Namespace, parser: _Parser, flags: Sequence[_Flag]
) -> dict[str, Any]:
    return {flag.dest: flag.resolve(getattr(namespace, flag.dest), parser) for flag in flags}


Settings = (
    config.CpConfig
    | config.AgentConfig
    | config.ProduceConfig
    | config.QueryConfig
    | config.AuditVerifyConfig
    | config.TokenCreateConfig
    | config.TokenListConfig
    | config.TokenRevokeConfig
    | config.BundleCreateConfig
    | config.BundleRevokeConfig
)


def _store_of(values: dict[str, Any], parser: _Parser) -> config.StoreSpec | None:
    """The store that ``--store`` or ``--redis-addr`` names; ``None``: SQLite in the data dir."""
    store: config.StoreSpec | None = values["store"]
    if values["redis_addr"] is not None:
        if store is not None:
            parser.error("give --store or --redis-addr, not both")
        store = config.StoreSpec.redis_at(values["redis_addr"])
    return store


def parse(argv: Sequence[str]) -> Settings:
    """Parse a command line into the settings of one role. Usage errors exit with code 2."""
    root, table = build_parser()
    namespace = root.parse_args(argv)
    if namespace.command == "cp":
        parser, flags = table["cp"]
        values = _resolve(namespace, parser, flags)
        data_dir = values["data_dir"] or config.default_data_dir()
        if (values["ca_cert"] is None) != (values["ca_key"] is None):
            parser.error("give --ca-cert and --ca-key together, or neither")
        if (values["api_tls_cert"] is None) != (values["api_tls_key"] is None):
            parser.error("give --api-tls-cert and --api-tls-key together, or neither")
        if values["insecure_plain_http"] and values["api_tls_cert"] is not None:
            parser.error("--insecure-plain-http serves no TLS: leave out --api-tls-cert")
        return config.CpConfig(
            listen=values["listen"],
            agent_listen=values["agent_listen"],
            data_dir=data_dir,
            store=_store_of(values, parser),
            insecure_no_auth=values["insecure_no_auth"],
            security=config.ChannelSecurity(
                ca_cert=values["ca_cert"],
                ca_key=values["ca_key"],
                signing_key=values["signing_key"],
                tls_san=tuple(values["tls_san"]),
                insecure_plain_ws=values["insecure_plain_ws"],
            ),
            api=config.ApiSecurity(
                tls_cert=values["api_tls_cert"],
                tls_key=values["api_tls_key"],
                insecure_plain_http=values["insecure_plain_http"],
            ),
            debug=values["debug"],
        )
    if namespace.command == "audit":
        parser, flags = table["audit verify"]
        values = _resolve(namespace, parser, flags)
        store = _store_of(values, parser)
        if store is None:
            store = config.StoreSpec.sqlite_in(values["data_dir"] or config.default_data_dir())
        return config.AuditVerifyConfig(store=store)
    if namespace.command == "token":
        return _parse_token(namespace, table)
    if namespace.command == "bundle":
        return _parse_bundle(namespace, table)
    if namespace.command == "agent":
        parser, flags = table["agent"]
        values = _resolve(namespace, parser, flags)
        plain = values["cp_url"].startswith("ws://")
        if plain and not values["insecure_plain_ws"]:
            parser.error(
                "--cp-url: ws:// is plain, unauthenticated WebSocket; use wss://, or give"
                " --insecure-plain-ws to allow it"
            )
        if values["bundle"] is None and not (plain and values["insecure_plain_ws"]):
            parser.error(
                f"--bundle is required (or set {_flag_env('--bundle')}): the folder"
                " 'transporter bundle create' wrote for this agent"
            )
        if values["bundle"] is None and values["agent_id"] is None:
            parser.error("--agent-id is required without --bundle")
        return config.AgentConfig(
            agent_id=values["agent_id"] or "",
            cluster_name=values["cluster_name"] or values["agent_id"] or "",
            bundle=values["bundle"],
            insecure_plain_ws=values["insecure_plain_ws"],
            cp_url=values["cp_url"],
            kubeconfig=values["kubeconfig"],
            labels=dict(values["label"]),
            concurrency=values["concurrency"],
            policy=values["policy"],
            state_namespace=values["state_namespace"] or "",
            impersonate=values["impersonate"] or "",
            debug=values["debug"],
        )
    if namespace.kind == "get":
        parser, flags = table["produce get"]
        values = _resolve(namespace, parser, flags)
        single = namespace.what in ("event", "agent")
        if single and not namespace.name:
            parser.error(f"get {namespace.what} needs an id")
        if not single and namespace.name:
            parser.error(f"get {namespace.what} takes no id (did you mean {namespace.what[:-1]}?)")
        _check_transport(values, parser)
        return config.QueryConfig(
            what=namespace.what,
            name=namespace.name,
            cp_url=values["cp_url"],
            agent=values["agent"],
            state=values["state"],
            limit=values["limit"],
            watch=values["watch"],
            timeout=values["timeout"],
            output=values["output"],
            token=values["token"],
            ca_cert=values["ca_cert"],
        )
    parser, flags = table["produce k8s"]
    values = _resolve(namespace, parser, flags)
    _check_transport(values, parser)
    return config.ProduceConfig(
        agent=values["agent"],
        manifests=tuple(values["manifest"]),
        cp_url=values["cp_url"],
        mode=values["mode"],
        wait=values["wait"],
        timeout=values["timeout"],
        output=values["output"],
        delete=values["delete"],
        ttl=values["ttl"],
        token=values["token"],
        ca_cert=values["ca_cert"],
    )


def _check_transport(values: dict[str, Any], parser: _Parser) -> None:
    try:
        config.check_token_transport(values["cp_url"], values["token"])
    except ConfigError as exc:
        parser.error(f"--cp-url: {exc}")


def _flag_env(name: str) -> str:
    return _Flag(name, "").env


def _parse_bundle(
    namespace: argparse.Namespace, table: dict[str, tuple[_Parser, Sequence[_Flag]]]
) -> config.BundleCreateConfig | config.BundleRevokeConfig:
    parser, flags = table[f"bundle {namespace.action}"]
    values = _resolve(namespace, parser, flags)
    if namespace.action == "revoke":
        store = _store_of(values, parser)
        if store is None:
            store = config.StoreSpec.sqlite_in(values["data_dir"] or config.default_data_dir())
        return config.BundleRevokeConfig(
            store=store,
            certificate=namespace.certificate,
            reason=values["reason"] or "",
            unrecorded=values["unrecorded"],
        )
    if (values["ca_cert"] is None) != (values["ca_key"] is None):
        parser.error("give --ca-cert and --ca-key together, or neither")
    data_dir = values["data_dir"] or config.default_data_dir()
    return config.BundleCreateConfig(
        agent_id=values["agent_id"],
        out=values["out"],
        data_dir=data_dir,
        store=_store_of(values, parser) or config.StoreSpec.sqlite_in(data_dir),
        ca_cert=values["ca_cert"],
        ca_key=values["ca_key"],
        signing_key=values["signing_key"],
        days=values["days"],
    )


def _parse_token(
    namespace: argparse.Namespace, table: dict[str, tuple[_Parser, Sequence[_Flag]]]
) -> config.TokenCreateConfig | config.TokenListConfig | config.TokenRevokeConfig:
    parser, flags = table[f"token {namespace.action}"]
    values = _resolve(namespace, parser, flags)
    store = _store_of(values, parser)
    if store is None:
        store = config.StoreSpec.sqlite_in(values["data_dir"] or config.default_data_dir())
    if namespace.action == "list":
        return config.TokenListConfig(store=store, output=values["output"])
    if namespace.action == "revoke":
        token_id = _checked(_checked_by(tokens.check_id), namespace.id, "ID", parser)
        return config.TokenRevokeConfig(store=store, token_id=token_id)
    role = tokens.Role(values["role"])
    try:
        agents = tokens.check_agents(role, tuple(values["agents"]))
    except ValueError as exc:
        parser.error(f"--agents: {exc}")
    return config.TokenCreateConfig(
        store=store, name=values["name"], role=role.value, agents=agents
    )


def main(argv: Sequence[str] | None = None) -> int:
    # Whatever a command writes (the store, keys, bundles) is its owner's alone, whoever runs it.
    os.umask(0o077)
    settings = parse(sys.argv[1:] if argv is None else argv)
    # Each role's heavy imports happen here, not at the top of this module.
    if isinstance(settings, config.CpConfig):
        from transporter.cp.main import main as cp_main

        return cp_main(settings)
    if isinstance(settings, config.AgentConfig):
        from transporter.agent.main import main as agent_main

        return agent_main(settings)
    if isinstance(settings, config.AuditVerifyConfig):
        return audit_verify(settings)
    if isinstance(
        settings, config.TokenCreateConfig | config.TokenListConfig | config.TokenRevokeConfig
    ):
        from transporter.cp.admin.tokens import main as token_main

        return token_main(settings)
    if isinstance(settings, config.BundleCreateConfig):
        from transporter.cp.admin.bundles import create_main

        return create_main(settings)
    if isinstance(settings, config.BundleRevokeConfig):
        from transporter.cp.admin.bundles import revoke_main

        return revoke_main(settings)
    from transporter.produce.main import main as produce_main

    return produce_main(settings)


def audit_verify(settings: config.AuditVerifyConfig) -> int:
    """``transporter audit verify``: 0 when the chain is intact, 1 when a record does not match
    or the store cannot be read, 2 when there is no SQLite store where it was said to be."""
    import trio  # here, not at the top: see the module's docstring

    from transporter.store import StoreError, VerifyResult, open_store, verify_audit

    prog = "transporter audit verify"
    spec = settings.store
    if spec.path is not None and not spec.path.is_file():
        # Opening would create an empty store there, which would verify, uselessly.
        print(f"{prog}: error: no store at {spec.path} (see --help)", file=sys.stderr)
        return EXIT_USAGE

    async def verify() -> VerifyResult:
        async with open_store(spec) as store:
            return await verify_audit(store)

    try:
        result = trio.run(verify)
    except StoreError as exc:
        print(f"{prog}: cannot read the store {spec.display}: {exc}", file=sys.stderr)
        return 1
    print(result.describe())
    return 0 if result.intact else 1
