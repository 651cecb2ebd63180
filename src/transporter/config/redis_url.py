"""What a Redis store URL says beyond where the server is: how many replicas must have each
write before the control plane answers, and, for ``redis+sentinel://``, which Sentinels to ask
for the primary. Pure parsing (no coredis here): :mod:`transporter.store.redis` connects."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qs, unquote, urlsplit

import attrs

from transporter.config.values import ConfigError

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
DEFAULT_SENTINEL_PORT = 26379
MAX_SENTINELS = 16
MAX_WAIT_REPLICAS = 16
DEFAULT_WAIT_TIMEOUT_MS = 2000
"""How long a write waits for its replicas by default: far above a healthy replica's lag (well
under a millisecond on one network) and below the store's call timeout, so that a replica that
stopped answering shows as "outcome unknown" (503, the producer retries) rather than as a hang."""
MAX_WAIT_TIMEOUT_MS = 60_000

_WAIT_PARAMETERS = {"wait_replicas", "wait_timeout_ms"}
_SENTINEL_PARAMETERS = _WAIT_PARAMETERS | {"db", "sentinel_username", "sentinel_password"}
_TLS_PARAMETERS = {
    "ssl_ca_certs",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_check_hostname",
    "ssl_cert_reqs",
}


@attrs.frozen
class Replication:
    """What a write waits for before the store reports it done."""

    wait_replicas: int = 0
    """Replicas that must have the write (Redis's ``WAIT``) before the store says it is stored:
    0 trusts the primary alone; 1 or more keeps an accepted event through a failover."""
    wait_all: bool = False
    """Wait for every replica the Sentinels see up (neither down nor disconnected from them),
    and at least :attr:`wait_replicas` (``wait_replicas=all``, the default with Sentinels). A
    fixed count is not enough for a switchover (``SENTINEL FAILOVER``): the old primary, still
    up, keeps taking writes until Sentinel turns it into a replica, and a replica that has not
    been moved yet confirms them;
    it is then resynchronised from the new primary and they are gone. Waiting for every replica
    refuses those writes (the promoted one has left), so they are retried, not lost."""
    wait_timeout_ms: int = DEFAULT_WAIT_TIMEOUT_MS
    """How long a write waits for them; past it the write's outcome is unknown (the store
    raises ``StoreUnavailable``)."""


@attrs.frozen
class SentinelTarget:
    """A ``redis+sentinel://[USER:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]/SERVICE`` URL, parsed."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    """The data servers' user (primary and replicas), from the URL's user part."""
    password: str | None = attrs.field(default=None, repr=False)
    sentinel_username: str | None = None
    """The Sentinels' own user and password (``?sentinel_username=&sentinel_password=``), when
    they are protected apart from the data servers (Sentinel's ``requirepass``)."""
    sentinel_password: str | None = attrs.field(default=None, repr=False)
    tls: bool = False
    """``rediss+sentinel://``: TLS to the Sentinels and the data servers alike, with the same
    ``ssl_*`` parameters as ``rediss://``."""


def is_sentinel(url: str) -> bool:
    return urlsplit(url).scheme in SENTINEL_SCHEMES


def query_of(url: str) -> dict[str, str]:
    """The URL's query parameters, the last of each name."""
    return {name: values[-1] for name, values in parse_qs(urlsplit(url).query).items()}


def replication_of(url: str) -> Replication:
    """The ``wait_replicas`` (a number, or ``all`` with Sentinels) and ``wait_timeout_ms`` of
    any Redis store URL. A Sentinel URL waits for all replicas unless it says otherwise: failing
    over is why it names Sentinels."""
    query = query_of(url)
    timeout = _bounded(query, "wait_timeout_ms", DEFAULT_WAIT_TIMEOUT_MS, 1, MAX_WAIT_TIMEOUT_MS)
    sentinel = is_sentinel(url)
    if query.get("wait_replicas", "all" if sentinel else "0") == "all":
        if not sentinel:
            raise ConfigError("store URL parameter wait_replicas=all needs redis+sentinel://")
        return Replication(1, wait_all=True, wait_timeout_ms=timeout)
    replicas = _bounded(query, "wait_replicas", 0, 0, MAX_WAIT_REPLICAS)
    return Replication(replicas, wait_timeout_ms=timeout)


def parse_sentinel(url: str) -> SentinelTarget:
    """The Sentinels and the service a ``redis+sentinel://`` URL names; :class:`ConfigError`
    (one line, never the password) when it is not one."""
    parts = urlsplit(url)
    if parts.scheme not in SENTINEL_SCHEMES:
        raise ConfigError(f"store URL scheme {parts.scheme!r} is not redis+sentinel://")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    sentinels = tuple(_host_port(item) for item in hosts.split(",")) if hosts else ()
    if not sentinels:
        raise ConfigError("Sentinel store URL names no Sentinel (redis+sentinel://HOST:PORT/...)")
    if len(sentinels) > MAX_SENTINELS:
        raise ConfigError(f"Sentinel store URL names more than {MAX_SENTINELS} Sentinels")
    service = unquote(parts.path.strip("/"))
    if not service or "/" in service:
        raise ConfigError("Sentinel store URL names no service (redis+sentinel://HOSTS/SERVICE)")
    query = query_of(url)
    tls = parts.scheme == "rediss+sentinel"
    unknown = sorted(set(query) - _SENTINEL_PARAMETERS - (_TLS_PARAMETERS if tls else set()))
    if unknown:
        hint = " (TLS needs rediss+sentinel://)" if unknown[0] in _TLS_PARAMETERS else ""
        raise ConfigError(f"Sentinel store URL has an unknown parameter {unknown[0]!r}{hint}")
    replication_of(url)  # its parameters are checked here too
    username, password = _credentials(userinfo)
    return SentinelTarget(
        sentinels=sentinels,
        service=service,
        db=_bounded(query, "db", 0, 0, 1 << 20),
        username=username,
        password=password,
        sentinel_username=query.get("sentinel_username") or None,
        sentinel_password=query.get("sentinel_password") or None,
        tls=tls,
    )


def _credentials(userinfo: str) -> tuple[str | None, str | None]:
    if not userinfo:
        return None, None
    user, colon, password = userinfo.partition(":")
    return (unquote(user) or None), (unquote(password) if colon else None)


def _host_port(item: str) -> tuple[str, int]:
    text = item.strip()
    if text.startswith("["):  # [IPv6]:PORT
        host, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":")
    else:
        host, _, port_text = text.rpartition(":") if ":" in text else (text, "", "")
    if not host:
        raise ConfigError(f"Sentinel store URL has an empty host in {item!r}")
    if not port_text:
        return host, DEFAULT_SENTINEL_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"Sentinel store URL has a bad port in {item!r}")
    return host, int(port_text)


def _bounded(query: Mapping[str, str], name: str, default: int, least: int, most: int) -> int:
    text = query.get(name)
    if text is None:
        return default
    if not text.isdigit() or not least <= int(text) <= most:
        raise ConfigError(f"store URL parameter {name}={text!r}: a number from {least} to {most}")
    return int(text)
