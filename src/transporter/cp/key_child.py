"""The child process that reads and makes the control plane's key files at its start
(``transporter __cp-keys``; the control plane's side, and why: :mod:`.key_request`).

Control planes started at once on one data folder take turns (:func:`.key_request.turn`): the
first makes the CA and the signing key, the others read them, and none issues its serving
certificate while another writes or reads the same files. A start killed half-way leaves its
temporary files (``.NAME.PID.tmp``): the next start removes them, in its turn."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives import hashes

from transporter.cp.key_files import read_signing_key
from transporter.cp.key_request import (
    REQUEST_BYTES,
    KeyAnswer,
    KeyRequest,
    PkiError,
    make_folder,
)
from transporter.cp.pki import (
    CA_CERT_FILE,
    CA_KEY_FILE,
    SERVING_CERT_FILE,
    SERVING_KEY_FILE,
    open_authority,
    write_serving,
)
from transporter.cp.signing_key import SIGNING_KEY_FILE
from transporter.protocol import codec

KEY_FILES: Final = (
    CA_CERT_FILE,
    CA_KEY_FILE,
    SERVING_CERT_FILE,
    SERVING_KEY_FILE,
    SIGNING_KEY_FILE,
)


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
    said it when it read them itself, with what was made before it. The control plane holds
    its turn on the folder meanwhile (:func:`.key_request.turn`)."""
    data_dir = Path(request.data_dir)
    if request.writes:
        try:
            make_folder(data_dir)
            _sweep(data_dir)
        except (PkiError, OSError) as exc:
            return KeyAnswer(error=str(exc))
    return _keys(request, data_dir)


def _keys(request: KeyRequest, data_dir: Path) -> KeyAnswer:
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


def _sweep(data_dir: Path) -> None:
    """Remove what a start killed half-way left: the temporary files of the key files (none is
    being written: this start holds the lock)."""
    for name in KEY_FILES:
        for left in data_dir.glob(f".{name}.*.tmp"):
            left.unlink(missing_ok=True)


def _path(text: str | None) -> Path | None:
    return None if text is None else Path(text)
