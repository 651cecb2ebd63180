"""Where the control plane keeps its state: a SQLite file or a Redis server."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

import attrs

from transporter.config.redis_url import SENTINEL_SCHEMES, parse_sentinel, replication_of
from transporter.config.values import Address, ConfigError


@attrs.frozen
class StoreSpec:
    """Where the control plane keeps its state.

    ``sqlite``: one SQLite file (the default: ``DATA_DIR/transporter.db``), needs nothing else.
    ``redis``: a Redis server, so that several control-plane replicas share state:
    ``redis://[USER:PASSWORD@]HOST:PORT/DB`` (an ACL user, or ``:PASSWORD@`` for
    ``requirepass``; %-quote what URLs reserve), or ``rediss://`` for TLS, verified against the
    CA in ``?ssl_ca_certs=FILE`` (else the system's) including the host name, with a client
    certificate from ``&ssl_certfile=FILE&ssl_keyfile=FILE``. Give a URL with a password
    through ``TRANSPORTER_STORE`` rather than ``--store``, which other users see in ``ps``.
    ``redis+sentinel://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...]/SERVICE`` (or
    ``rediss+sentinel://``) asks those Sentinels for SERVICE's primary and follows it through a
    failover (:mod:`transporter.config.redis_url`). ``?wait_replicas=N`` (any Redis URL) makes
    every write wait until N replicas have it; with Sentinels the default is ``all``, every
    replica they see up.
    """

    kind: Literal["sqlite", "redis"]
    url: str
    path: Path | None = None

    @classmethod
    def parse(cls, text: str) -> StoreSpec:
        parts = urlsplit(text)
        if parts.scheme in ("redis", "rediss", "unix"):
            if parts.scheme != "unix" and not parts.hostname:
                raise ConfigError(f"store URL {cls('redis', text).display!r} names no Redis host")
            replication_of(text)
            return cls("redis", text)
        if parts.scheme in SENTINEL_SCHEMES:
            parse_sentinel(text)
            return cls("redis", text)
        if parts.scheme == "sqlite":
            # sqlite:///abs/path or sqlite://relative/path, as in SQLAlchemy's form.
            raw = (parts.netloc + parts.path) if parts.netloc else parts.path
            if not raw or raw == "/":
                raise ConfigError(f"store URL {text!r} names no file")
            return cls("sqlite", text, Path(raw))
        raise ConfigError(
            f"store URL {cls('redis', text).display!r}: scheme must be sqlite://, redis://,"
            " rediss://, redis+sentinel:// or rediss+sentinel://"
        )

    @property
    def display(self) -> str:
        """The URL without its passwords, for logs: the user part's, and any query parameter
        whose name, %-decoded as coredis and :func:`~transporter.config.redis_url.query_of`
        read it, says ``password`` (``?password=``, ``?sentinel%5Fpassword=``). The query is
        rebuilt from its parsed pairs, so no spelling of a name slips past the mask."""
        if not self._has_password:
            return self.url
        parts = urlsplit(self.url)
        userinfo, _, hosts = parts.netloc.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}:***@{hosts}" if colon else parts.netloc
        pairs = [
            (name, "***" if _secret(name) else value)
            for name, value in parse_qsl(parts.query, keep_blank_values=True)
        ]
        shown = parts._replace(netloc=netloc, query=urlencode(pairs, safe="*/")).geturl()
        if not netloc and self.url.startswith(f"{parts.scheme}://"):  # unix:///path
            shown = shown.replace(":", "://", 1)
        return shown

    @property
    def _has_password(self) -> bool:
        parts = urlsplit(self.url)
        userinfo = parts.netloc.rpartition("@")[0]
        names = (name for name, _ in parse_qsl(parts.query, keep_blank_values=True))
        return ":" in userinfo or any(_secret(name) for name in names)

    @property
    def flags(self) -> str:
        """The flags that name this store to another command, for the hints commands print:
        ``--data-dir DIR`` for the SQLite file of a data folder, else ``--store URL`` (a URL
        with a password is not repeated: the same ``--store`` or ``TRANSPORTER_STORE``)."""
        if self.path is not None and self.path.name == "transporter.db":
            return f"--data-dir {self.path.parent}"
        if self._has_password:
            return "--store URL (the same, or TRANSPORTER_STORE)"
        return f"--store {self.url}"

    @classmethod
    def sqlite_in(cls, data_dir: Path) -> StoreSpec:
        path = data_dir / "transporter.db"
        return cls("sqlite", f"sqlite://{path}", path)

    @classmethod
    def redis_at(cls, address: Address) -> StoreSpec:
        return cls("redis", f"redis://{address}/0")


def _secret(name: str) -> bool:
    """Whether a query parameter (its decoded name) holds a password."""
    return "password" in name.lower()
