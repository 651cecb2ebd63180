"""Translating answers and client exceptions into our errors: pure, no cluster."""

from __future__ import annotations

import json
import ssl

import pytest
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

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


def test_connection_failures_are_unavailable() -> None:
    refused = urllib3.exceptions.NewConnectionError(None, "Connection refused")  # type: ignore[arg-type]
    wrapped = urllib3.exceptions.MaxRetryError(None, "/version", refused)  # type: ignore[arg-type]
    for exc in (refused, wrapped):
        error = from_library(exc)
        assert isinstance(error, KubeUnavailable)
        assert str(error).startswith("cannot connect to the API server")


def test_tls_failures_are_unavailable_and_say_so() -> None:
    wrapped = ApiException(status=0, reason="SSLError\ncertificate verify failed")
    assert str(from_library(wrapped)) == (
        "request to the API server failed: SSLError: certificate verify failed"
    )
    assert str(from_library(ssl.SSLError("bad cert"))).startswith("TLS with the API server failed")
    error = from_library(urllib3.exceptions.ReadTimeoutError(None, "/x", "read timed out"))  # type: ignore[arg-type]
    assert str(error).startswith("the API server did not answer in time")
