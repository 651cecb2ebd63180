"""Settings of ``transporter cp``: its addresses, data folder, store, and the security of its
agent channel and of its HTTP API."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import attrs

from transporter.config.store_spec import StoreSpec
from transporter.config.values import Address, ConfigError

REPLICA_LOOK_LEAST = 1.0
HEARTBEAT_LEAST = 1.0
HEARTBEAT_MOST = 300.0
"""Bounds of ``--heartbeat-interval`` (seconds)."""
BUDGET_LEAST = 1.0
BUDGET_MOST = 100_000.0
"""Bounds of ``--heartbeat-budget`` (heartbeats a second)."""
"""Seconds between a replica's safety looks at least: each connection reads its outbox at
each, so a tiny value would be a loop reading Redis without pause."""


def default_data_dir() -> Path:
    """Like k3s: a system folder when run as root, the user's data folder otherwise;
    :class:`ConfigError` for a user with neither ``HOME`` nor an entry in the password file
    (a container's arbitrary uid), which must be given ``--data-dir``."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/transporter")
    base = os.environ.get("XDG_DATA_HOME")
    if not base:
        try:
            base = str(Path.home() / ".local" / "share")
        except (RuntimeError, KeyError):  # no HOME, and no home for this uid in /etc/passwd
            raise ConfigError(
                f"no --data-dir, and uid {os.getuid()} has no home folder for the default"
                " (HOME is not set): give --data-dir DIR or TRANSPORTER_DATA_DIR, a folder"
                " this user can write"
            ) from None
    return Path(base) / "transporter"


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

    listen: Address = Address("0.0.0.0", 8080)  # noqa: RUF009, S104 - frozen; every interface
    """HTTP API (events, agents, health). Open to producers and to load balancers' probes."""

    agent_listen: Address = Address("0.0.0.0", 8443)  # noqa: RUF009, S104 - frozen; every interface
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

    log_format: Literal["text", "json"] = "text"
    """How log lines look on stderr: ``text`` for people, ``json`` for collectors."""

    queue_claim_after: float = 30.0
    """Queue mode (a Redis store): seconds an entry a replica read may stay unsettled before
    another replica takes it over (the reader died). Longer than one submission takes."""

    replica_look: float = 30.0
    """Replicas on one Redis: seconds between the looks at the store that catch what a missed
    hint of another replica would have told (each connection's outbox, each waiting request's
    event). The hints carry the news at once; rarer looks cost Redis fewer reads at rest. At
    least :data:`REPLICA_LOOK_LEAST`."""

    heartbeat_interval: float = 5.0
    """Seconds between each agent's heartbeats at least, told to it when it registers: an
    agent is ``unhealthy`` after two silent intervals, and its connection taken for dead after
    four (on both sides). More for a fleet larger than ``heartbeat_budget`` allows. From
    :data:`HEARTBEAT_LEAST` to :data:`HEARTBEAT_MOST`."""

    heartbeat_budget: float = 650.0
    """Heartbeats a second the control plane takes from its whole fleet at rest (the agents in
    its store): each agent is told the interval at which the fleet sends this many, if longer
    than ``heartbeat_interval``. Each heartbeat is a frame to read: 650 a second hold 10,000
    idle agents (an interval of 15.4 s) in under a tenth of a core. From
    :data:`BUDGET_LEAST` to :data:`BUDGET_MOST`."""

    @property
    def effective_store(self) -> StoreSpec:
        return self.store or StoreSpec.sqlite_in(self.data_dir)
