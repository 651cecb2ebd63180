"""The control plane's key files are read and made in a child process at its start, so that its
own process never loads ``cryptography`` (about 11 MiB of memory, its own OpenSSL included):
this module is the control plane's side, :mod:`.key_child` the child's.

The child is this program again (``transporter __cp-keys``, a command no help lists): it reads
a :class:`KeyRequest` (JSON) on its standard input, loads or makes the CA and the event-signing
key (:mod:`.pki`, :mod:`.key_files`), issues the serving certificate into the data folder, and
writes a :class:`KeyAnswer` on its standard output: the files' paths, the CA's fingerprint and
the signing key's 32 secret bytes, which the control plane then signs with through the OpenSSL
its TLS already loaded (:class:`transporter.security.ed25519.PrivateKey`). A key file that cannot
be used is the child's :class:`PkiError`, passed on word for word.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Final

import attrs

from transporter.protocol import codec

KEYS_COMMAND: Final = "__cp-keys"
"""The child's command line, after the program."""
TIMEOUT: Final = 60.0
"""Seconds the child has (a start on a slow disk syncs a few files)."""
REQUEST_BYTES: Final = 64 * 1024
"""What the child reads of its request at most."""


class PkiError(Exception):
    """A CA or key file that cannot be used; the message says which and why."""


@attrs.frozen
class KeyRequest:
    data_dir: str
    ca_cert: str | None = None
    ca_key: str | None = None
    """The CA given as files (both or neither); else the data folder's, made if need be."""
    signing_key: str | None = None
    """The event-signing key given as a file; else the data folder's, made if need be."""
    authority: bool = True
    """Whether a CA is needed (and the serving certificate issued): TLS on either port."""
    names: tuple[str, ...] = ()
    """The serving certificate's names beside the local ones."""


@attrs.frozen
class KeyAnswer:
    signing_seed: str = ""
    """The event-signing key's secret 32 bytes, in hex."""
    signing_made: bool = False
    ca_cert_file: str | None = None
    ca_made: bool = False
    ca_fingerprint: str | None = None
    """SHA-256 of the CA's certificate (hex)."""
    serving: tuple[str, str] | None = None
    """The serving certificate's file (its chain) and key file."""
    error: str | None = None
    """Why a key file cannot be used (:class:`PkiError`); the rest is then empty."""


def command() -> list[str]:
    """The child's command line: this program, as it was started."""
    if getattr(sys, "frozen", False):  # the single file: sys.executable is the file
        return [sys.executable, KEYS_COMMAND]
    return [sys.executable, "-m", "transporter", KEYS_COMMAND]


def ask(request: KeyRequest) -> KeyAnswer:
    """The child's answer to ``request``; :class:`PkiError` when a key file cannot be used, or
    when the child could not say. Blocking: call it before the event loop, or in a thread."""
    text = json.dumps(codec.unstructure(request)).encode()
    try:
        done = subprocess.run(
            command(), input=text, capture_output=True, timeout=TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        raise PkiError(f"the key files were not read within {TIMEOUT:g} s") from None
    except OSError as exc:
        raise PkiError(f"cannot start {command()[0]} to read the key files: {exc}") from None
    try:
        answer = codec.structure(json.loads(done.stdout), KeyAnswer)
    except (ValueError, codec.ProtocolError):
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        why = lines[-1] if lines else f"exit code {done.returncode}"
        raise PkiError(f"the key files could not be read: {why}") from None
    if answer.error is not None:
        raise PkiError(answer.error)
    return answer
