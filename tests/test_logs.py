"""No log line holds a token, a password or a private key, whoever writes it; no client value
can forge or hide a line. The guard alone, then a real control plane at debug level."""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.bed.roles import running_cp
from transporter.logs import Guard, escape, scrub

TOKEN = "tpt_0123456789ab_" + "s3cretS3cretS3cretS3cretS3cretS3cretS3cr"
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YTpiIn0.c2lnbmF0dXJlLXNpZw"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"Authorization: Bearer {TOKEN}", TOKEN.rsplit("_", 1)[1]),
        (f"(b'authorization', b'Bearer {JWT}')", JWT),
        (f"token {TOKEN} refused", TOKEN.rsplit("_", 1)[1]),
        ("redis://user:hunter2hunter2@redis:6379/0", "hunter2hunter2"),
        ("Authorization: Basic dXNlcjpodW50ZXIy", "dXNlcjpodW50ZXIy"),
        ('{"password": "hunter2hunter2"}', "hunter2hunter2"),
        ("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEI\n-----END EC PRIVATE KEY-----", "MHcCAQEEI"),
    ],
)
def test_secrets_of_every_known_shape_are_scrubbed(text: str, secret: str) -> None:
    assert secret not in scrub(text)
    assert "<redacted>" in scrub(text)


def test_what_is_not_a_secret_stays() -> None:
    for text in (
        "the API needs a bearer token and there is none yet",
        "refused: token:ci-deploy 403 GET /events",
        "created token 3f9c2a71b0de 'ci-deploy', role submit",
    ):
        assert scrub(text) == text


def test_client_values_can_neither_forge_nor_hide_a_line() -> None:
    assert escape("/events%0A") == "/events%0A"
    assert escape("/events\n12:00:00 INFO forged") == "/events\\n12:00:00 INFO forged"
    assert escape("a\rb\x1b[2Jc\u202ed\u2028") == "a\\rb\\x1b[2Jc\\u202ed\\u2028"


def test_the_guard_escapes_arguments_and_scrubs_whatever_a_library_logs() -> None:
    guard = Guard()
    ours = logging.LogRecord("transporter.cp", logging.INFO, "", 0, "path %s", ("/x\nFAKE",), None)
    guard.filter(ours)
    assert ours.getMessage() == "path /x\\nFAKE"
    theirs = logging.LogRecord(
        "hpack.hpack", logging.DEBUG, "", 0, "%s", (f"Bearer {TOKEN}",), None
    )
    guard.filter(theirs)
    assert TOKEN not in theirs.getMessage()
    try:
        raise ValueError(f"header {TOKEN}")
    except ValueError:
        import sys

        failed = logging.LogRecord("x", logging.ERROR, "", 0, "failed", (), sys.exc_info())
    guard.filter(failed)
    assert failed.exc_text is not None and TOKEN not in failed.exc_text


def test_a_control_plane_at_debug_level_logs_no_token_and_no_forged_line(tmp_path: Path) -> None:
    with running_cp(tmp_path, "--debug") as cp:
        token = cp.new_token("ops", "admin")
        for path in ("/events", "/events%0A12:00:00%20INFO%20forged", "/nowhere%0D%0AX:%20y"):
            request = urllib.request.Request(
                cp.api_url + path,
                headers={"Authorization": f"Bearer {token}x"},  # refused: logged with its path
            )
            try:
                urllib.request.urlopen(request, timeout=10, context=cp.api_context)
            except urllib.error.HTTPError as exc:
                exc.close()
        request = urllib.request.Request(
            cp.api_url + "/events", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=10, context=cp.api_context) as answer:
            assert answer.status == 200
    output = cp.output
    secret = token.rsplit("_", 1)[1]
    assert secret not in output
    assert "refused:" in output and "401 GET /events" in output  # the requests were logged
    lines = output.splitlines()
    assert not any(line.startswith("12:00:00 INFO forged") for line in lines)
    assert any("\\n12:00:00 INFO forged" in line for line in lines), output[-2000:]
