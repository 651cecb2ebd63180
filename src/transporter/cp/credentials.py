"""What the control plane needs, at start, to be secure by default: its CA (made in the data
folder on the first start, as k3s does, unless given as files), its serving certificate (issued
again at every start, for ``--tls-san``, the addresses it listens on and the local names), the
agent channel's TLS context (agents' client certificates required), the HTTPS API's, and the
event-signing key. The files are read and made in a child process (:mod:`.key_request`)."""

from __future__ import annotations

import hashlib
import logging
import ssl
from pathlib import Path

import attrs

from transporter.config.cp import ApiSecurity, CpConfig
from transporter.cp.http import api_context
from transporter.cp.key_request import KeyRequest, PkiError, ask, turn
from transporter.cp.signing_key import EventSigner
from transporter.cp.tls import server_context
from transporter.security import ed25519
from transporter.security.ed25519 import PrivateKey
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
    """Load (or on the first start, make) the CA and keys; :class:`~.key_request.PkiError`
    when a file given or found cannot be used, :class:`~.key_request.KeysUnread` when the child
    that reads them could not say, :class:`~transporter.security.ed25519.Ed25519Unavailable`
    when this process cannot sign. Blocking (a child process): call it before the event loop,
    or in a worker thread."""
    security, api = settings.security, settings.api
    data_dir = settings.data_dir
    issued_for_api = not api.insecure_plain_http and api.tls_cert is None
    ed25519.ready()  # before anything is made: this process signs every event
    request = KeyRequest(
        str(data_dir),
        ca_cert=_text(security.ca_cert),
        ca_key=_text(security.ca_key),
        signing_key=_text(security.signing_key),
        authority=not security.insecure_plain_ws or issued_for_api,
        names=tuple(_names(settings)),
    )
    with turn(data_dir, writes=request.writes):
        answer = ask(request)
        if answer.ca_made:
            log.info("CA created in %s (first start): %s", data_dir, answer.ca_cert_file)
        if answer.signing_made:
            log.info("event-signing key created in %s (first start)", data_dir)
        if answer.error is not None:
            raise PkiError(answer.error)
        signer = EventSigner(PrivateKey(bytes.fromhex(answer.signing_seed)))
        serving = (
            None if answer.serving is None else (Path(answer.serving[0]), Path(answer.serving[1]))
        )
        channel = None
        fingerprint = None
        if security.insecure_plain_ws:
            _warn_plain_ws()
        elif answer.ca_cert_file is not None and serving is not None:
            fingerprint = answer.ca_fingerprint
            channel = server_context(Path(answer.ca_cert_file), *serving)
        api_tls = _api_tls(api, serving)
    return Credentials(signer, channel, ca_fingerprint=fingerprint, api_tls=api_tls)


def _text(path: Path | None) -> str | None:
    return None if path is None else str(path)


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
