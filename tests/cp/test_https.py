"""The API is HTTPS by default, with the control plane's own certificate (from its CA) or with
the certificate and key it is given; plain HTTP only when asked, loudly."""

from __future__ import annotations

import http.client
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.bed.pki import TestPki
from tests.bed.roles import running_cp
from transporter.cp.pki import write_serving


def healthz(url: str, context: ssl.SSLContext | None) -> int:
    with urllib.request.urlopen(f"{url}/healthz", timeout=10, context=context) as answer:
        return int(answer.status)


def test_by_default_the_api_is_https_with_the_control_planes_ca(tmp_path: Path) -> None:
    with running_cp(tmp_path / "cp") as cp:
        assert cp.api_url.startswith("https://")
        assert healthz(cp.api_url, cp.api_context) == 200
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            healthz(cp.api_url, ssl.create_default_context())  # the system's trust: not ours
        with pytest.raises(http.client.RemoteDisconnected):  # no plain HTTP: closed at once
            healthz(cp.api_url.replace("https://", "http://"), None)


def test_the_api_serves_the_certificate_it_is_given(tmp_path: Path) -> None:
    company = TestPki.create(tmp_path / "company-ca")
    cert, key = write_serving(company.authority, tmp_path / "files", ["127.0.0.1", "localhost"])
    flags = ["--api-tls-cert", str(cert), "--api-tls-key", str(key)]
    with running_cp(tmp_path / "cp", *flags) as cp:
        assert healthz(cp.api_url, ssl.create_default_context(cafile=str(company.ca_cert))) == 200
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            healthz(cp.api_url, cp.api_context)  # the control plane's own CA did not issue it


def test_plain_http_only_when_asked_and_said_loudly(tmp_path: Path) -> None:
    with running_cp(tmp_path / "cp", "--insecure-plain-http") as cp:
        assert cp.api_url.startswith("http://")
        assert healthz(cp.api_url, None) == 200
    assert "API TLS IS OFF (--insecure-plain-http)" in cp.output
