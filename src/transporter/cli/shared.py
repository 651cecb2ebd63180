"""Flags that several commands take, and the checks and defaults that go with them.

The store's flags import their settings' modules (:mod:`transporter.config.store_spec`,
:mod:`transporter.config.cp`) when a command uses them, not here: an agent, which takes none of
them, does without (issue 15).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from transporter.cli.commands import Parser, Values
from transporter.cli.flags import Flag, dest_of, path
from transporter.config.values import Address, ConfigError

if TYPE_CHECKING:
    from transporter.config.store_spec import StoreSpec

DEBUG = Flag("--debug", "log at debug level", switch=True)
LOG_FORMAT = Flag(
    "--log-format",
    "log lines on stderr: text for people, json (one object a line) for collectors (default:"
    " json when stderr is not a terminal)",
    str,
    choices=("text", "json"),
)


def store_spec(text: str) -> StoreSpec:
    """``--store``'s value (:meth:`StoreSpec.parse`)."""
    from transporter.config.store_spec import StoreSpec

    return StoreSpec.parse(text)


# Where the control plane keeps its state: the same flags (and variables) for `cp` and for the
# commands that open its store.
STORE_FLAGS = (
    Flag(
        "--data-dir",
        "the control plane's data folder: its embedded store, CA and keys (default:"
        " /var/lib/transporter as root, else $XDG_DATA_HOME/transporter or"
        " ~/.local/share/transporter; on a read-only root, give a writable one)",
        path,
        metavar="DIR",
    ),
    Flag(
        "--store",
        "state store URL: sqlite:///PATH, redis://[USER:PASSWORD@]HOST:PORT/DB or rediss://..."
        " for TLS, redis+sentinel://[USER:PASSWORD@]HOST:PORT,HOST:PORT.../SERVICE for the"
        " primary Redis Sentinel names (default: SQLite in --data-dir)",
        store_spec,
        metavar="URL",
    ),
    Flag(
        "--redis-addr",
        "shorthand for --store redis://HOST:PORT/0",
        Address.parse,
        metavar="HOST:PORT",
    ),
)

# The control plane's CA and event-signing key: the same flags for `cp` and `bundle create`.
KEY_FLAGS = (
    Flag(
        "--ca-cert",
        "CA certificate for the agent channel (default: ca.crt in --data-dir, made at first start)",
        path,
        metavar="FILE",
    ),
    Flag("--ca-key", "the CA's private key (with --ca-cert)", path, metavar="FILE"),
    Flag(
        "--signing-key",
        "Ed25519 key events are signed with (default: event-signing.key in --data-dir, made at"
        " first start)",
        path,
        metavar="FILE",
    ),
)

INSECURE_PLAIN_WS = Flag(
    "--insecure-plain-ws",
    "agent channel over plain ws://, without TLS or client certificates (a closed test network"
    " only)",
    switch=True,
)

OUTPUT = Flag(
    "--output",
    "text or wide (more columns): tables that never wrap; name: kind/id a line; json or yaml"
    " (times in RFC 3339)",
    str,
    "text",
    choices=("text", "wide", "name", "json", "yaml"),
    short="-o",
)
NO_HEADERS = Flag("--no-headers", "tables without their header line", switch=True)


def data_dir_of(values: Values, parser: Parser) -> Path:
    """``--data-dir``, else the default data folder."""
    path_given: Path | None = values["data_dir"]
    if path_given is not None:
        return path_given
    from transporter.config.cp import default_data_dir

    try:
        return default_data_dir()
    except ConfigError as exc:
        parser.error(str(exc))


def store_of(values: Values, parser: Parser) -> StoreSpec | None:
    """The store that ``--store`` or ``--redis-addr`` names; ``None``: SQLite in the data dir."""
    from transporter.config.store_spec import StoreSpec

    store: StoreSpec | None = values["store"]
    if values["redis_addr"] is not None:
        if store is not None:
            parser.error("give --store or --redis-addr, not both")
        store = StoreSpec.redis_at(values["redis_addr"])
    return store


def store_or_default(values: Values, parser: Parser) -> StoreSpec:
    """The store that ``--store`` or ``--redis-addr`` names, else SQLite in the data folder."""
    from transporter.config.store_spec import StoreSpec

    return store_of(values, parser) or StoreSpec.sqlite_in(data_dir_of(values, parser))


def both_or_neither(values: Values, parser: Parser, first: str, second: str) -> None:
    """Two flags that only mean something together (a certificate and its key)."""
    if (values[dest_of(first)] is None) != (values[dest_of(second)] is None):
        parser.error(f"give {first} and {second} together, or neither")


def log_format_of(values: Values) -> Literal["text", "json"]:
    """``--log-format``, else ``json`` when stderr is not a terminal (a collector reads it)."""
    given: str | None = values["log_format"]
    if given is None:
        return "text" if sys.stderr.isatty() else "json"
    return "json" if given == "json" else "text"
