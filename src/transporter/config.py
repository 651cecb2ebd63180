"""Typed settings for the three roles, and the parsers that turn flag text into them.

Every parser raises :class:`ConfigError` with a message that names what was wrong; the CLI turns
that into a one-line error and exit code 2. Nothing here does I/O.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import attrs

from transporter.protocol import ids


class ConfigError(ValueError):
    """A setting has a value we cannot use. The message says which and why."""


# --- values ----------------------------------------------------------------------------------


@attrs.frozen
class Address:
    """A TCP address to listen on or dial. Port 0 asks the OS for a free port (tests use it)."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Address:
        host, sep, port_text = text.strip().rpartition(":")
        if not sep or not port_text.isdigit():
            raise ConfigError(f"{text!r} is not HOST:PORT")
        port = int(port_text)
        if not 0 <= port <= 65535:
            raise ConfigError(f"port {port} in {text!r} is outside 0-65535")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        return cls(host or "0.0.0.0", port)  # noqa: S104 - an empty host means every interface

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        """Whether only this host can reach it (``localhost``, 127.0.0.0/8, ``::1``)."""
        return host_is_loopback(self.host)


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
    """

    kind: Literal["sqlite", "redis"]
    url: str
    path: Path | None = None

    @classmethod
    def parse(cls, text: str) -> StoreSpec:
        parts = urlsplit(text)
        if parts.scheme in ("redis", "rediss", "unix"):
            if parts.scheme != "unix" and not parts.hostname:
                raise ConfigError(f"store URL {text!r} names no Redis host")
            return cls("redis", text)
        if parts.scheme == "sqlite":
            # sqlite:///abs/path or sqlite://relative/path, as in SQLAlchemy's form.
            raw = (parts.netloc + parts.path) if parts.netloc else parts.path
            if not raw or raw == "/":
                raise ConfigError(f"store URL {text!r} names no file")
            return cls("sqlite", text, Path(raw))
        raise ConfigError(f"store URL {text!r}: scheme must be sqlite://, redis:// or rediss://")

    @property
    def display(self) -> str:
        """The URL without its password, for logs."""
        parts = urlsplit(self.url)
        if parts.password is None:
            return self.url
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()

    @classmethod
    def sqlite_in(cls, data_dir: Path) -> StoreSpec:
        path = data_dir / "transporter.db"
        return cls("sqlite", f"sqlite://{path}", path)

    @classmethod
    def redis_at(cls, address: Address) -> StoreSpec:
        return cls("redis", f"redis://{address}/0")


def _checked[T](check: Callable[[str], T], text: str) -> T:
    try:
        return check(text)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def parse_label(text: str) -> tuple[str, str]:
    """``K=V`` with Kubernetes label syntax, so labels can later select agents like kubectl -l."""
    return _checked(ids.check_label, text)


def parse_namespace(text: str) -> str:
    """A Kubernetes namespace name (a DNS label)."""
    return _checked(ids.check_namespace, text)


def parse_agent_id(text: str) -> str:
    """Agent ids are DNS labels (lower case, digits, '-' and '.'), at most 63 characters."""
    return _checked(ids.check_agent_id, text)


def parse_ws_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ConfigError(f"{text!r} is not a ws:// or wss:// URL with a host")
    return text


def parse_http_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{text!r} is not an http:// or https:// URL with a host")
    return text.rstrip("/")


def parse_token(text: str) -> str:
    """An API token as given: whitespace around it (the newline or carriage return a file or a
    copy brings along) is dropped; a character no token holds is refused, saying which and
    where, never quoting the token."""
    token = text.strip()
    if not token:
        raise ConfigError("is empty")
    for position, char in enumerate(token, start=1):
        if not (char.isascii() and (char.isalnum() or char in "_-")):
            raise ConfigError(
                f"is not a token: it holds {_character(char)} at position {position}; a token"
                " is tpt_<id>_<secret> (letters, digits, '_' and '-')"
            )
    if not token.startswith("tpt_"):
        raise ConfigError("is not a transporter token: tokens are tpt_<id>_<secret>")
    return token


def _character(char: str) -> str:
    names = {"\r": "a carriage return", "\n": "a line feed", "\t": "a tab", " ": "a space"}
    return names.get(char, f"the character U+{ord(char):04X}")


def host_is_loopback(host: str | None) -> bool:
    """Whether only this host can be reached at ``host`` (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host is None:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_token_transport(url: str, token: str | None) -> None:
    """A token is sent in cleartext only to this host: ``http://`` elsewhere is refused."""
    parts = urlsplit(url)
    if token is not None and parts.scheme == "http" and not host_is_loopback(parts.hostname):
        raise ConfigError(
            f"{url} is plain HTTP and not this host: the token would cross the network"
            " readable; use https:// (the control plane serves HTTPS by default)"
        )


def parse_positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{text!r} is not a number") from None
    if not value > 0:
        raise ConfigError(f"{text!r} must be greater than 0")
    return value


def parse_positive_int(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise ConfigError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{text!r} is not a boolean (true/false, 1/0, yes/no, on/off)")


def default_data_dir() -> Path:
    """Like k3s: a system folder when run as root, the user's data folder otherwise."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/transporter")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "transporter"


# --- settings of each role -------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ChannelSecurity:
    """How the agent channel knows who is who, and how agents know events are the control
    plane's. Secure by default: TLS, agents' client certificates from the control plane's CA,
    every event signed."""

    ca_cert: Path | None = None
    ca_key: Path | None = None
    """The CA that issues agents' certificates and the channel's own, as files (both or
    neither). ``None``: ``ca.crt`` and ``ca.key`` in the data folder, made on the first start."""

    signing_key: Path | None = None
    """The Ed25519 key every event is signed with (PEM). ``None``: ``event-signing.key`` in the
    data folder, made on the first start. Replicas on one store must share it (and the CA)."""

    tls_san: tuple[str, ...] = ()
    """Names (DNS names or IP addresses) agents dial the control plane by, for its serving
    certificate; localhost, 127.0.0.1, ::1 and the host's name are always in it."""

    insecure_plain_ws: bool = False
    """Serve plain ``ws://`` without TLS: agents are not authenticated and may register as any
    id. For a closed test network only; the control plane warns loudly at start."""


@attrs.frozen(kw_only=True)
class ApiSecurity:
    """How the HTTP API is served: HTTPS by default, with the control plane's serving
    certificate (from its CA, for the same names as the agent channel's) or the files given."""

    tls_cert: Path | None = None
    tls_key: Path | None = None
    """A certificate (chain) and its key for the API, as PEM files (both or neither).
    ``None``: the serving certificate issued from the control plane's CA."""

    insecure_plain_http: bool = False
    """Serve plain HTTP: bearer tokens cross the network readable. For a closed test network
    or behind a TLS-terminating proxy on the same host; the control plane warns loudly."""


@attrs.frozen(kw_only=True)
class CpConfig:
    """Settings of ``transporter cp``."""

    listen: Address = Address("0.0.0.0", 8080)  # noqa: S104
    """HTTP API (events, agents, health). Open to producers and to load balancers' probes."""

    agent_listen: Address = Address("0.0.0.0", 8443)  # noqa: S104
    """Agent channel (WebSocket). The one port that agents dial out to."""

    data_dir: Path = attrs.field(factory=default_data_dir)
    """Where the embedded store, the CA and the event-signing key live."""

    security: ChannelSecurity = ChannelSecurity()
    """TLS and client certificates on the agent channel; the event-signing key."""

    api: ApiSecurity = ApiSecurity()
    """TLS on the HTTP API."""

    store: StoreSpec | None = None
    """``None`` means the embedded SQLite file in ``data_dir``."""

    insecure_no_auth: bool = False
    """Serve the HTTP API without tokens: whoever reaches it may submit to every agent and read
    everything. Off by default; for a closed test network only. The control plane warns at
    start, and events then carry the ``created_by`` their producers claim."""

    debug: bool = False

    @property
    def effective_store(self) -> StoreSpec:
        return self.store or StoreSpec.sqlite_in(self.data_dir)


@attrs.frozen(kw_only=True)
class AgentConfig:
    """Settings of ``transporter agent``."""

    cp_url: str
    """The control plane's agent channel, ``wss://HOST:PORT/ws``. The agent dials out to it."""

    agent_id: str = ""
    """This agent's identity at the control plane; events are addressed to it. ``""``: the id
    in the bundle's certificate (the only one the control plane accepts from this agent)."""

    bundle: Path | None = None
    """The folder ``transporter bundle create`` wrote: this agent's certificate and key, the
    control plane's CA and its event-signing public key. Required unless ``insecure_plain_ws``."""

    insecure_plain_ws: bool = False
    """Allow a plain ``ws://`` control plane (no TLS, no client certificate). Events are still
    checked against the bundle's signing key when there is a bundle. The agent warns loudly."""

    cluster_name: str = ""
    """A human name for the cluster, shown in ``GET /agents``. Defaults to the agent id."""

    kubeconfig: Path | None = None
    """``None``: in-cluster service account, then ``$KUBECONFIG``, then ``~/.kube/config``."""

    labels: dict[str, str] = attrs.field(factory=dict)
    """Selectable labels (``env=prod``) sent at registration."""

    concurrency: int = 4
    """Events executed at once; more wait (events on the same object wait their turn anyway)."""

    policy: Path | None = None
    """Policy file: which kinds and namespaces the control plane may touch, and which dangerous
    defaults it may ask for. ``None``: the default policy, which refuses whatever could grant
    power beyond the objects themselves (see the README's Agent policy)."""

    state_namespace: str = ""
    """Where the agent keeps what it ran (:mod:`transporter.agent.journal`); events may not
    touch it. ``""``: the namespace of its ServiceAccount when it runs in a pod, else
    ``transporter-system``."""

    impersonate: Literal["", "producer"] = ""
    """``producer``: act as each event's producer (Kubernetes impersonation), so the cluster's
    RBAC decides what each producer may do, behind the policy."""

    debug: bool = False


@attrs.frozen(kw_only=True)
class ProduceConfig:
    """Settings of ``transporter produce k8s``."""

    agent: str
    manifests: tuple[Path, ...]
    cp_url: str = "https://localhost:8080"
    mode: Literal["http"] = "http"
    wait: bool = False
    timeout: float = 300.0
    """Seconds ``--wait`` follows the event before giving up (exit code 1)."""
    output: Literal["text", "json"] = "text"
    delete: bool = False
    """Delete the objects the manifests name, instead of applying them."""
    ttl: int | None = None
    """Seconds the event may take before it expires; ``None``: the control plane's default."""
    token: str | None = attrs.field(default=None, repr=False)
    """The API token, sent as ``Authorization: Bearer``; ``None``: none is sent."""
    ca_cert: Path | None = None
    """The CA that issued the control plane's certificate (its ``DATA_DIR/ca.crt``);
    ``None``: the system's trust store."""


@attrs.frozen(kw_only=True)
class AuditVerifyConfig:
    """Settings of ``transporter audit verify``: the store whose audit log to check."""

    store: StoreSpec


@attrs.frozen(kw_only=True)
class TokenCreateConfig:
    """Settings of ``transporter token create``: a new API token in the control plane's store."""

    store: StoreSpec
    name: str
    """The identity the token stands for: events it submits are ``created_by`` ``token:NAME``."""
    role: Literal["read", "submit", "admin"]
    agents: tuple[str, ...] = ()
    """Glob patterns of the agents a read or submit token may target (an admin token: none)."""


@attrs.frozen(kw_only=True)
class TokenListConfig:
    """Settings of ``transporter token list``."""

    store: StoreSpec
    output: Literal["text", "json"] = "text"


@attrs.frozen(kw_only=True)
class TokenRevokeConfig:
    """Settings of ``transporter token revoke``."""

    store: StoreSpec
    token_id: str


@attrs.frozen(kw_only=True)
class BundleCreateConfig:
    """Settings of ``transporter bundle create``: an agent's credentials, from the control
    plane's CA and event-signing key (its data folder, or the files given)."""

    agent_id: str
    out: Path
    """A new (or empty) folder to write the bundle into."""
    data_dir: Path
    store: StoreSpec
    """Where the issued certificate is recorded (the control plane's store)."""
    ca_cert: Path | None = None
    ca_key: Path | None = None
    signing_key: Path | None = None
    days: float = 365.0
    """How long the agent's certificate is valid."""


@attrs.frozen(kw_only=True)
class BundleRevokeConfig:
    """Settings of ``transporter bundle revoke``: a revocation into the control plane's store."""

    store: StoreSpec
    certificate: str
    """The certificate's serial number (hex) or SHA-256 fingerprint, or an unambiguous prefix of
    one of a recorded certificate."""
    reason: str = ""
    unrecorded: bool = False
    """Revoke a whole serial or fingerprint that the store has no record of (a certificate
    issued before certificates were recorded)."""


QUERY_KINDS = ("events", "event", "agents", "agent")


@attrs.frozen(kw_only=True)
class QueryConfig:
    """Settings of ``transporter produce get``."""

    what: Literal["events", "event", "agents", "agent"]
    name: str | None = None
    cp_url: str = "https://localhost:8080"
    agent: str | None = None
    state: str | None = None
    limit: int = 50
    watch: bool = False
    timeout: float = 300.0
    output: Literal["text", "json"] = "text"
    token: str | None = attrs.field(default=None, repr=False)
    """The API token, sent as ``Authorization: Bearer``; ``None``: none is sent."""
    ca_cert: Path | None = None
    """As :attr:`ProduceConfig.ca_cert`."""
