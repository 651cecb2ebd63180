"""The control plane reads and makes its key files in a child process (cp/key_request.py,
cp/key_child.py), so that its own process never loads ``cryptography``: what the child made is
what the files hold, a file that cannot be used is said word for word, and a child that fails
or hangs is a clear error, not a control plane that waits."""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import re
import sys
import time
from pathlib import Path

import pytest
import trio
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.bed import records as r
from transporter.config.cp import ApiSecurity, ChannelSecurity, CpConfig
from transporter.cp import key_request
from transporter.cp.credentials import Credentials, prepare
from transporter.cp.key_files import open_signing_key
from transporter.cp.key_request import KeyRequest, KeysUnread, PkiError
from transporter.cp.main import main as cp_main
from transporter.cp.pki import CA_CERT_FILE, CA_KEY_FILE, SERVING_CERT_FILE, SERVING_KEY_FILE
from transporter.cp.signing_key import SIGNING_KEY_FILE
from transporter.protocol import signing
from transporter.protocol.der import pem_blocks
from transporter.security import ed25519
from transporter.security.ed25519 import Ed25519Unavailable, PublicKey


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


def test_the_fingerprint_is_the_ca_certificates(tmp_path: Path) -> None:
    """What the store pins (cp/credentials.py ``pin_keys``): SHA-256 of the CA's DER, as before
    the child read it, so that a store pinned by an older version still matches."""
    made = prepare(CpConfig(data_dir=tmp_path))
    (der,) = pem_blocks((tmp_path / CA_CERT_FILE).read_bytes(), "CERTIFICATE")
    assert made.ca_fingerprint == hashlib.sha256(der).hexdigest()


@pytest.mark.parametrize(
    ("plain_ws", "api", "files"),
    [
        (True, ApiSecurity(insecure_plain_http=True), set()),
        (True, ApiSecurity(), {CA_CERT_FILE, SERVING_CERT_FILE}),  # the CA issues the API's
        (False, ApiSecurity(insecure_plain_http=True), {CA_CERT_FILE, SERVING_CERT_FILE}),
    ],
)
def test_what_is_made_follows_what_is_secured(
    tmp_path: Path, plain_ws: bool, api: ApiSecurity, files: set[str]
) -> None:
    settings = CpConfig(
        data_dir=tmp_path, api=api, security=ChannelSecurity(insecure_plain_ws=plain_ws)
    )
    made = prepare(settings)
    assert (made.tls is None, made.ca_fingerprint is None) == (plain_ws, plain_ws)
    assert (made.api_tls is None) == api.insecure_plain_http
    names = {path.name for path in tmp_path.iterdir()}
    assert names & {CA_CERT_FILE, SERVING_CERT_FILE} == files
    assert SIGNING_KEY_FILE in names  # events are signed whatever the transport


def test_a_ca_made_before_a_key_file_failed_is_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="transporter.cp")
    (tmp_path / SIGNING_KEY_FILE).mkdir(parents=True)  # a folder where the key should be
    with pytest.raises(PkiError, match="event-signing key"):
        prepare(CpConfig(data_dir=tmp_path))
    assert (tmp_path / CA_CERT_FILE).exists()
    assert f"CA created in {tmp_path} (first start)" in caplog.text


def child(monkeypatch: pytest.MonkeyPatch, code: str) -> None:
    """The child replaced by a Python program ``code`` (a real process)."""
    monkeypatch.setattr(key_request, "command", lambda: [sys.executable, "-c", code])


def test_a_child_that_fails_is_an_error_saying_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="transporter.cp")
    child(monkeypatch, "import sys; print('first', file=sys.stderr); sys.exit('no room left')")
    said = r"^the key files could not be read: no room left \(--debug shows all it said\)$"
    with pytest.raises(KeysUnread, match=said):
        key_request.ask(KeyRequest(str(tmp_path)))
    assert "the key files' child process: first" in caplog.text  # all it said, at debug
    child(monkeypatch, "import os; os.kill(os.getpid(), 9)")
    with pytest.raises(KeysUnread, match=r"exited with code -9 and said nothing"):
        key_request.ask(KeyRequest(str(tmp_path)))


SEED = "11" * 32


@pytest.mark.parametrize(
    "answer",
    [
        "[]",
        "{}",
        "not json",
        json.dumps({"signing_seed": "xyz", "ca_cert_file": "c", "ca_fingerprint": SEED}),
        json.dumps({"signing_seed": SEED}),  # a CA was asked for: no serving certificate
        json.dumps({"signing_seed": SEED, "unknown": 1}),
    ],
)
def test_an_answer_that_is_not_one_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, answer: str
) -> None:
    child(monkeypatch, f"print({answer!r})")
    with pytest.raises(KeysUnread, match=r"^the key files could not be read: it answered what"):
        key_request.ask(KeyRequest(str(tmp_path)))


def test_a_child_that_does_not_answer_is_given_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    child(monkeypatch, "import time; time.sleep(60)")
    monkeypatch.setattr(key_request, "TIMEOUT", 0.5)
    started = time.monotonic()
    with pytest.raises(KeysUnread, match=r"^the key files were not read within 0\.5 s$"):
        key_request.ask(KeyRequest(str(tmp_path)))
    assert time.monotonic() - started < 30


def test_the_child_runs_this_package_not_one_where_the_control_plane_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``python -m`` would import a ``transporter`` from the current folder first: anyone who
    can write there would pick the control plane's keys."""
    fake = tmp_path / "here" / "transporter"
    fake.mkdir(parents=True)
    for name in ("__init__.py", "__main__.py"):
        (fake / name).write_text("raise SystemExit('the fake package ran')\n")
    monkeypatch.chdir(fake.parent)
    made = prepare(CpConfig(data_dir=tmp_path / "data"))
    assert made.tls is not None


def test_no_key_is_made_when_this_process_cannot_sign(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ed25519, "LIBCRYPTO", "libcrypto-of-nowhere.so.3")
    ed25519._libcrypto.cache_clear()
    try:
        with pytest.raises(Ed25519Unavailable, match="libcrypto-of-nowhere"):
            prepare(CpConfig(data_dir=tmp_path / "data"))
    finally:
        monkeypatch.undo()
        ed25519._libcrypto.cache_clear()
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("code", "exit_code", "said"),
    [  # a child that could not say: a supervisor may start it again; a bad file: it may not
        ("import sys; sys.exit('interrupted')", 1, "the key files could not be read: interrupted"),
        ('print(\'{"error": "ca.key is not a key"}\')', 2, "ca.key is not a key"),
    ],
)
def test_the_control_plane_exits_with_one_line_and_the_code_that_says_whose(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    code: str,
    exit_code: int,
    said: str,
) -> None:
    child(monkeypatch, code)
    assert cp_main(CpConfig(data_dir=tmp_path)) == exit_code
    assert capsys.readouterr().err == f"transporter cp: error: {said}\n"


async def test_control_planes_starting_at_once_on_one_folder_agree(tmp_path: Path) -> None:
    """They take turns (a lock in the folder), from the child's making the files to the control
    plane's reading them: one makes the CA and the key, the others read them, every serving
    certificate is read with its own key, and the files stay a CA with its own key and a
    serving certificate it issued."""

    async def start(settings: CpConfig, made: list[Credentials]) -> None:
        made.append(await trio.to_thread.run_sync(prepare, settings))

    for round_ in range(4):
        data = tmp_path / f"data-{round_}"
        made: list[Credentials] = []
        async with trio.open_nursery() as nursery:
            for _ in range(8):
                nursery.start_soon(start, CpConfig(data_dir=data), made)
        (der,) = pem_blocks((data / CA_CERT_FILE).read_bytes(), "CERTIFICATE")
        assert {m.ca_fingerprint for m in made} == {hashlib.sha256(der).hexdigest()}
        assert len({m.signer.public_raw for m in made}) == 1
        ca = x509.load_pem_x509_certificate((data / CA_CERT_FILE).read_bytes())
        key = serialization.load_pem_private_key((data / CA_KEY_FILE).read_bytes(), None)
        assert key.public_key() == ca.public_key()
        serving = x509.load_pem_x509_certificate((data / SERVING_CERT_FILE).read_bytes())
        assert serving.issuer == ca.subject
        serving_key = serialization.load_pem_private_key(
            (data / SERVING_KEY_FILE).read_bytes(), None
        )
        assert serving_key.public_key() == serving.public_key()


def test_what_a_start_killed_half_way_left_is_removed(tmp_path: Path) -> None:
    prepare(CpConfig(data_dir=tmp_path))
    left = [tmp_path / f".{CA_KEY_FILE}.99999.tmp", tmp_path / f".{SERVING_KEY_FILE}.7.tmp"]
    for path in left:
        path.write_text("half a key")
    other = tmp_path / ".notes.1.tmp"  # not one of ours: left alone
    other.write_text("mine")
    prepare(CpConfig(data_dir=tmp_path))
    assert [path.exists() for path in left] == [False, False]
    assert other.exists()


def test_a_turn_held_too_long_by_another_is_given_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(key_request, "TIMEOUT", 0.3)
    tmp_path.mkdir(exist_ok=True)
    with (tmp_path / key_request.LOCK_FILE).open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another control plane's start, stuck
        with pytest.raises(KeysUnread, match=r"held the key files of .* for 0\.3 s$"):
            prepare(CpConfig(data_dir=tmp_path))
    assert not (tmp_path / CA_CERT_FILE).exists()
