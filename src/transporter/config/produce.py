"""Settings of ``transporter produce k8s`` and ``transporter produce get``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import attrs


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
    output: Literal["text", "wide", "name", "json", "yaml"] = "text"
    no_headers: bool = False
    """Tables without their header line."""
    log_format: Literal["text", "json"] = "text"
    """How log lines (a library's warnings) look on stderr."""
    delete: bool = False
    """Delete the objects the manifests name, instead of applying them."""
    ttl: int | None = None
    """Seconds the event may take before it expires; ``None``: the control plane's default."""
    token: str | None = attrs.field(default=None, repr=False)
    """The API token, sent as ``Authorization: Bearer``; ``None``: none is sent."""
    ca_cert: Path | None = None
    """The CA that issued the control plane's certificate (its ``DATA_DIR/ca.crt``);
    ``None``: the system's trust store."""


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
    output: Literal["text", "wide", "name", "json", "yaml"] = "text"
    no_headers: bool = False
    """Tables without their header line."""
    log_format: Literal["text", "json"] = "text"
    """How log lines (a library's warnings) look on stderr."""
    token: str | None = attrs.field(default=None, repr=False)
    """The API token, sent as ``Authorization: Bearer``; ``None``: none is sent."""
    ca_cert: Path | None = None
    """As :attr:`ProduceConfig.ca_cert`."""
