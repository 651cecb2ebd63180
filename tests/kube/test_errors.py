"""Translating answers and client exceptions into our errors: pure, no cluster."""

from __future__ import annotations

import http.client
import json
import ssl

import pytest

from transporter.kube import KubeNotFound, KubeRejected, KubeUnavailable
from transporter.kube.errors import from_library, from_response


def status(code: int, message: str, reason: str = "") -> bytes:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message}
    return json.dumps(body | ({"reason": reason} if reason else {}) | {"code": code}).encode()


def test_a_refusal_carries_the_servers_message_reason_and_code() -> None:
    error = from_response(422, status(422, 'Deployment.apps "x" is invalid: ...', "Invalid"))
    assert isinstance(error, KubeRejected)
    assert not isinstance(error, KubeNotFound)
    assert (str(error), error.reason, error.code) == (
        'Deployment.apps "x" is invalid: ...',
        "Invalid",
        422,
    )


def test_404_is_not_found() -> None:
    error = from_response(404, status(404, 'configmaps "x" not found', "NotFound"))
    assert isinstance(error, KubeNotFound)
    assert str(error) == 'configmaps "x" not found'


@pytest.mark.parametrize("code", [429, 500, 502, 503, 504])
def test_overload_and_server_errors_are_transient(code: int) -> None:
    error = from_response(code, status(code, "etcdserver: request timed out", "InternalError"))
    assert isinstance(error, KubeUnavailable)
    assert str(error) == f"the API server answered {code}: etcdserver: request timed out"


def test_a_reasonless_500_to_a_write_is_about_the_object() -> None:
    message = "failed to create typed patch object (default/x; /v1, Kind=ConfigMap): .bogus: ..."
    assert isinstance(from_response(500, status(500, message), write=True), KubeRejected)
    assert isinstance(from_response(500, status(500, message), write=False), KubeUnavailable)


def test_an_answer_that_is_not_a_status_is_quoted_briefly() -> None:
    error = from_response(400, b"<html>" + b"x" * 2000)
    assert isinstance(error, KubeRejected)
    assert str(error).startswith("HTTP 400: <html>xxx")
    assert len(str(error)) < 600
    assert str(from_response(502, b"")) == "the API server answered 502: HTTP 502"


def test_a_redirect_is_refused_and_says_where_it_led() -> None:
    error = from_response(307, b"", location="https://elsewhere.example/api")
    assert isinstance(error, KubeRejected)
    assert not isinstance(error, KubeUnavailable)
    assert (str(error), error.code) == (
        "the API server answered 307, a redirect to https://elsewhere.example/api: not followed",
        307,
    )
    assert str(from_response(301, b"")) == "the API server answered 301, a redirect: not followed"


def test_connection_failures_are_unavailable() -> None:
    refused = ConnectionRefusedError(111, "Connection refused")
    error = from_library(refused, connecting=True)
    assert isinstance(error, KubeUnavailable)
    assert str(error) == "cannot connect to the API server: Connection refused"
    tunnel = OSError("Tunnel connection failed: 407 Proxy Authentication Required")
    assert str(from_library(tunnel, connecting=True, proxy="proxy.corp:3128")) == (
        "cannot connect to the API server through the proxy proxy.corp:3128: "
        "Tunnel connection failed: 407 Proxy Authentication Required"
    )


def test_a_connection_lost_mid_way_is_unavailable() -> None:
    gone = http.client.RemoteDisconnected("Remote end closed connection without response")
    assert str(from_library(gone)) == (
        "connection to the API server failed: RemoteDisconnected: "
        "Remote end closed connection without response"
    )
    short = from_library(http.client.IncompleteRead(b"abc", 7))
    assert str(short) == (
        "connection to the API server failed: IncompleteRead(3 bytes read, 7 more expected)"
    )
    reset = ConnectionResetError(104, "Connection reset by peer")
    assert (
        str(from_library(reset)) == "connection to the API server failed: Connection reset by peer"
    )


def test_tls_failures_and_timeouts_are_unavailable_and_say_so() -> None:
    bad = ssl.SSLError("bad cert")
    assert str(from_library(bad)).startswith("TLS with the API server failed")
    assert str(from_library(bad, connecting=True, proxy="p:443")).startswith(
        "TLS with the proxy p:443 failed"
    )
    late = from_library(TimeoutError("timed out"))
    assert isinstance(late, KubeUnavailable)
    assert str(late) == "the API server did not answer in time: timed out"
