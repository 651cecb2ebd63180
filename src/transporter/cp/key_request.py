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

import fcntl
import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import attrs

from transporter.protocol import codec

log = logging.getLogger("transporter.cp")

KEYS_COMMAND: Final = "__cp-keys"
"""The child's command line, after the program."""
TIMEOUT: Final = 60.0
"""Seconds the child has (a start on a slow disk syncs a few files)."""
REQUEST_BYTES: Final = 64 * 1024
"""What the child reads of its request at most."""
STDERR_LINES: Final = 40
"""Lines of what the child wrote on its standard error that are logged, at debug (its last):
a failure is one line, its last."""
_BOOT: Final = (
    "import json, sys; sys.path[:] = json.loads(sys.argv.pop(1));"
    " from transporter.cli import main; sys.exit(main(sys.argv[1:]))"
)
"""The child from a Python environment: isolated (``-I``: neither the current folder nor
``PYTHON*`` variables on its path), with the control plane's own import path, so that it runs
the very package the control plane runs, never one found where it was started."""
_HEX64: Final = re.compile(r"[0-9a-f]{64}")
LOCK_FILE: Final = ".keys.lock"
"""In the data folder: control planes started at once on it take turns on its key files."""


class PkiError(Exception):
    """A CA or key file that cannot be used; the message says which and why."""


class KeysUnread(Exception):
    """The child could not say (it failed, was killed, hung, or answered what it should not):
    not a settings problem, so the control plane exits as when it cannot start, and a
    supervisor starts it again."""


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

    @property
    def writes(self) -> bool:
        """Whether anything may be made in the data folder (a CA, a key, the serving
        certificate), so that control planes starting at once take turns on it."""
        return self.authority or self.signing_key is None


@attrs.frozen
class KeyAnswer:
    signing_seed: str = attrs.field(default="", repr=False)
    """The event-signing key's secret 32 bytes, in hex (never shown; the bytes stay in this
    process's memory, as the key file's did in cryptography's)."""
    signing_made: bool = False
    ca_cert_file: str | None = None
    ca_made: bool = False
    ca_fingerprint: str | None = None
    """SHA-256 of the CA's certificate (hex)."""
    serving: tuple[str, str] | None = None
    """The serving certificate's file (its chain) and key file."""
    error: str | None = None
    """Why a key file cannot be used (:class:`PkiError`): the keys are then not given, but what
    was made before (``ca_made``) is said."""


def make_folder(folder: Path) -> None:
    """``folder`` made if need be (its owner's alone); :class:`PkiError` saying how to fix it."""
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise PkiError(
            f"cannot make the data folder {folder}: {exc.strerror}; give --data-dir DIR (or"
            " TRANSPORTER_DATA_DIR), a folder this user can write (a read-only root needs one)"
        ) from None


@contextmanager
def turn(data_dir: Path, *, writes: bool) -> Iterator[None]:
    """This control plane's turn on the key files of ``data_dir`` (a lock in it), from its
    child's making them to its own reading of them (the serving certificate, issued again at
    every start: another start's, read half before and half after its rewrite, would not
    match its key). ``writes``: anything may be written there; else no turn is needed. A folder
    this user cannot write gets none either (nothing can be made there). Blocking, bounded by
    :data:`TIMEOUT` (:class:`KeysUnread`)."""
    if not writes:
        yield
        return
    make_folder(data_dir)
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        lock = os.open(data_dir / LOCK_FILE, flags, 0o600)
    except OSError:
        yield
        return
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise KeysUnread(
                        f"another control plane has held the key files of {data_dir} for"
                        f" {TIMEOUT:g} s"
                    ) from None
                time.sleep(0.02)  # a blocking helper (before the event loop, or in a thread)
        yield
    finally:
        os.close(lock)


def command() -> list[str]:
    """The child's command line: this program, as it was started."""
    if getattr(sys, "frozen", False):  # the single file: sys.executable is the file
        return [sys.executable, KEYS_COMMAND]
    return [sys.executable, "-I", "-c", _BOOT, json.dumps(sys.path), KEYS_COMMAND]


def ask(request: KeyRequest) -> KeyAnswer:
    """The child's answer to ``request`` (a key file that cannot be used is its ``error``);
    :class:`KeysUnread` when it could not say. Blocking: call it before the event loop, or in a
    worker thread."""
    text = json.dumps(codec.unstructure(request)).encode()
    argv = command()
    try:
        done = subprocess.run(argv, input=text, capture_output=True, timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise KeysUnread(f"the key files were not read within {TIMEOUT:g} s") from None
    except OSError as exc:
        raise KeysUnread(f"cannot start {argv[0]} to read the key files: {exc}") from None
    said = done.stderr.decode(errors="replace").strip().splitlines()
    answer = _checked(done.stdout, request) if done.returncode == 0 else None
    for line in said[-STDERR_LINES:]:
        log.debug("the key files' child process: %s", line)
    if answer is None:
        why = said[-1] if said else f"it exited with code {done.returncode} and said nothing"
        if done.returncode == 0 and not said:
            why = "it answered what it should not"
        more = " (--debug shows all it said)" if len(said) > 1 else ""
        raise KeysUnread(f"the key files could not be read: {why}{more}")
    return answer


def _checked(output: bytes, request: KeyRequest) -> KeyAnswer | None:
    """The answer, if it is one to ``request`` (never shown: it holds the key)."""
    try:
        data: Any = json.loads(output)
        if not isinstance(data, dict):
            return None
        answer = codec.structure(data, KeyAnswer)
    except (ValueError, codec.ProtocolError):
        return None
    if answer.error is not None:
        return answer
    if not _HEX64.fullmatch(answer.signing_seed):
        return None
    issued = (answer.ca_cert_file, answer.ca_fingerprint, answer.serving)
    if request.authority != all(part is not None for part in issued):
        return None
    if answer.ca_fingerprint is not None and not _HEX64.fullmatch(answer.ca_fingerprint):
        return None
    return answer
