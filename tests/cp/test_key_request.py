"""The control plane reads and makes its key files in a child process (cp/key_request.py,
cp/key_child.py), so that its own process never loads ``cryptography``: what the child made is
what the files hold, a file that cannot be used is said word for word, and a child that fails
or hangs is a clear error, not a control plane that waits."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pytest

from tests.bed import records as r
from transporter.config.cp import ChannelSecurity, CpConfig
from transporter.cp import key_request
from transporter.cp.credentials import prepare
from transporter.cp.key_files import open_signing_key
from transporter.cp.key_request import KeyRequest, PkiError
from transporter.cp.pki import CA_CERT_FILE, SERVING_CERT_FILE, SERVING_KEY_FILE
from transporter.protocol import signing
from transporter.security.ed25519 import PublicKey


def test_the_first_start_makes_the_keys_and_the_next_reads_them(tmp_path: Path) -> None:
    settings = CpConfig(data_dir=tmp_path)
    first = prepare(settings)
    assert first.tls is not None and first.api_tls is not None
    assert {CA_CERT_FILE, SERVING_CERT_FILE, SERVING_KEY_FILE} <= {
        p.name for p in tmp_path.iterdir()
    }
    again = prepare(settings)
    assert again.signer.public_raw == first.signer.public_raw
    assert again.ca_fingerprint == first.ca_fingerprint
    # The key the child read is the file's: what it signs, the file's public key verifies.
    from_file, made = open_signing_key(tmp_path, create=False)
    assert not made and from_file.public_raw == first.signer.public_raw
    event = again.signer.sign(r.event("ev-1", "agent-a"))
    signing.verify(event, PublicKey(from_file.public_raw))


def test_a_key_file_that_cannot_be_used_is_said_word_for_word(tmp_path: Path) -> None:
    bad = tmp_path / "signing.pem"
    bad.write_text("not a key\n")
    settings = CpConfig(data_dir=tmp_path / "data", security=ChannelSecurity(signing_key=bad))
    with pytest.raises(
        PkiError, match=f"^{re.escape(str(bad))} is not an unencrypted PEM private key: "
    ):
        prepare(settings)
    only_one = ChannelSecurity(ca_cert=tmp_path / "ca.crt")
    with pytest.raises(PkiError, match=r"^give both the CA's certificate and its key, or neither$"):
        prepare(CpConfig(data_dir=tmp_path / "data", security=only_one))


def test_a_child_that_fails_is_an_error_saying_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing = [sys.executable, "-c", "import sys; sys.exit('no room left on the device')"]
    monkeypatch.setattr(key_request, "command", lambda: failing)
    with pytest.raises(PkiError, match=r"^the key files could not be read: no room left"):
        key_request.ask(KeyRequest(str(tmp_path)))


def test_a_child_that_does_not_answer_is_given_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hanging = [sys.executable, "-c", "import time; time.sleep(60)"]
    monkeypatch.setattr(key_request, "command", lambda: hanging)
    monkeypatch.setattr(key_request, "TIMEOUT", 0.5)
    started = time.monotonic()
    with pytest.raises(PkiError, match=r"^the key files were not read within 0\.5 s$"):
        key_request.ask(KeyRequest(str(tmp_path)))
    assert time.monotonic() - started < 30
