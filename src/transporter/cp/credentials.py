"""What the control plane needs, at start, to be secure by default: its CA (made in the data
folder on the first start, as k3s does, unless given as files), its serving certificate (issued
again at every start, for ``--tls-san``, the addresses it listens on and the local names), the
agent channel's TLS context (agents' client certificates required), the HTTPS API's, and the
event-signing key."""

from __future__ import annotations

import hashlib
import logging
import ssl
from pathlib import Path

import attrs
from cryptography.hazmat.primitives import hashes

from transporter.config.cp import ApiSecurity, CpConfig
from transporter.cp.http import api_context
from transporter.cp.pki import PkiError, open_authority, write_serving
from transporter.cp.signing_key import EventSigner, open_signing_key
from transporter.cp.tls import server_context
from transporter.store import Store

log = logging.getLogger("transporter.cp")


@attrs.frozen
class Credentials:
    signer: EventSigner
    tls: ssl.SSLContext | None
    """The agent channel's; ``None``: plain WebSocket (``--insecure-plain-ws``)."""
    ca_fingerprint: str | None = None
    """SHA-256 of the CA's certificate (hex); ``None`` without TLS."""
    api_tls: ssl.SSLContext | None = None
    """The HTTPS API's; ``None``: plain HTTP (``--insecure-plain-http``)."""

    @property
    def signing_fingerprint(self) -> str:
        """SHA-256 (hex) of the event-signing public key, as agents' bundles hold it."""
        return hashlib.sha256(self.signer.public_pem()).hexdigest()


class KeyMismatch(Exception):
    """This control plane's CA or signing key is not the one its store was first used with:
    replicas on one store must share them (agents trust one CA and one signing key)."""


async def pin_keys(store: Store, credentials: Credentials) -> None:
    """Pin this control plane's key fingerprints in the store on first use; raise
    :class:`KeyMismatch` when the store holds another replica's."""
    pins = [("signing key", credentials.signing_fingerprint, "--signing-key")]
    if credentials.ca_fingerprint is not None:
        pins.append(("CA", credentials.ca_fingerprint, "--ca-cert and --ca-key"))
    for name, mine, flags in pins:
        pinned = await store.pin(f"{name} sha256", mine)
        if pinned != mine:
            raise KeyMismatch(
                f"this control plane's {name} (SHA-256 {mine[:16]}…) is not the one its store"
                f" was first used with ({pinned[:16]}…): control planes sharing a store must"
                f" share their keys; give this one the others' {flags} (or its --data-dir's"
                " files)"
            )


def prepare(settings: CpConfig) -> Credentials:
    """Load (or on the first start, make) the CA and keys; :class:`~.pki.PkiError` when a file
    given or found cannot be used. Blocking file work: call it before the event loop, or in a
    worker thread."""
    security, api = settings.security, settings.api
    data_dir = settings.data_dir
    authority = None
    issued_for_api = not api.insecure_plain_http and api.tls_cert is None
    if not security.insecure_plain_ws or issued_for_api:
        # first: a CA that cannot be used leaves nothing made
        authority, made = open_authority(data_dir, security.ca_cert, security.ca_key, create=True)
        if made:
            log.info("CA created in %s (first start): %s", data_dir, authority.cert_file)
    signer, made = open_signing_key(data_dir, security.signing_key, create=True)
    if made:
        log.info("event-signing key created in %s (first start)", data_dir)
    serving = None
    if authority is not None:
        serving = write_serving(authority, data_dir, _names(settings))
    channel = None
    fingerprint = None
    if security.insecure_plain_ws:
        _warn_plain_ws()
    elif authority is not None and serving is not None:
        fingerprint = authority.certificate.fingerprint(hashes.SHA256()).hex()
        channel = server_context(authority.cert_file, *serving)
    return Credentials(signer, channel, ca_fingerprint=fingerprint, api_tls=_api_tls(api, serving))


def _names(settings: CpConfig) -> list[str]:
    """The names the serving certificate is for, beside the local ones: ``--tls-san`` and the
    addresses the control plane listens on, when they name one."""
    names = [*settings.security.tls_san]
    for address in (settings.agent_listen, settings.listen):
        if address.host not in ("", "0.0.0.0", "::", *names):  # noqa: S104 - compared, not bound
            names.append(address.host)
    return names


def _api_tls(api: ApiSecurity, serving: tuple[Path, Path] | None) -> ssl.SSLContext | None:
    if api.insecure_plain_http:
        return None
    if api.tls_cert is not None and api.tls_key is not None:
        cert, key = api.tls_cert, api.tls_key
    else:
        assert serving is not None, "the CA issues the API's certificate when none is given"
        cert, key = serving
    try:
        return api_context(str(cert), str(key))
    except (OSError, ssl.SSLError) as exc:
        raise PkiError(f"the API's certificate {cert} or key {key} cannot be used: {exc}") from None


def _warn_plain_ws() -> None:
    log.warning(
        "AGENT CHANNEL SECURITY IS OFF (--insecure-plain-ws): plain ws:// without TLS;"
        " agents are not authenticated and may register as any id, and whoever can reach"
        " the port or the network between may read and change what goes over it. Use it on"
        " a closed test network only."
    )
