"""The child process that reads and makes the control plane's key files at its start
(``transporter __cp-keys``; the control plane's side, and why: :mod:`.key_request`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from cryptography.hazmat.primitives import hashes

from transporter.cp.key_files import read_signing_key
from transporter.cp.key_request import REQUEST_BYTES, KeyAnswer, KeyRequest, PkiError
from transporter.cp.pki import open_authority, write_serving
from transporter.protocol import codec


def main() -> int:
    """Read the request on standard input, write the answer on standard output."""
    text = sys.stdin.buffer.read(REQUEST_BYTES + 1)
    if len(text) > REQUEST_BYTES:
        print(f"a request of more than {REQUEST_BYTES} bytes", file=sys.stderr)
        return 2
    request = codec.structure(json.loads(text), KeyRequest)
    sys.stdout.write(json.dumps(codec.unstructure(_answer(request))))
    return 0


def _answer(request: KeyRequest) -> KeyAnswer:
    """The keys; a file that cannot be used (or made), said word for word as the control plane
    said it when it read them itself, with what was made before it."""
    data_dir = Path(request.data_dir)
    authority, ca_made = None, False
    try:
        if request.authority:  # first: a CA that cannot be used leaves nothing made
            authority, ca_made = open_authority(
                data_dir, _path(request.ca_cert), _path(request.ca_key), create=True
            )
        seed, signing_made = read_signing_key(data_dir, _path(request.signing_key), create=True)
        if authority is None:
            return KeyAnswer(seed.hex(), signing_made)
        cert, key = write_serving(authority, data_dir, request.names)
    except (PkiError, OSError) as exc:
        made = str(authority.cert_file) if authority is not None else None
        return KeyAnswer(error=str(exc), ca_made=ca_made, ca_cert_file=made)
    return KeyAnswer(
        seed.hex(),
        signing_made,
        ca_cert_file=str(authority.cert_file),
        ca_made=ca_made,
        ca_fingerprint=authority.certificate.fingerprint(hashes.SHA256()).hex(),
        serving=(str(cert), str(key)),
    )


def _path(text: str | None) -> Path | None:
    return None if text is None else Path(text)
