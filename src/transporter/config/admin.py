"""Settings of the commands run on the control plane's host against its store: ``audit
verify``, ``token create|list|revoke`` and ``bundle create|revoke``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import attrs

from transporter.config.store_spec import StoreSpec


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
    output: Literal["text", "wide", "name", "json", "yaml"] = "text"
    no_headers: bool = False


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
