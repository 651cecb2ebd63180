"""Our own errors, named by whose fault it is. No exception of urllib3 or ssl escapes kube/.

- :class:`ManifestError`: the submitted manifests are invalid (the producer's fault).
- :class:`KubeConfigError`: no usable kubeconfig or in-cluster account, or an exec credential
  plugin that fails (the operator's fault).
- :class:`KubeRejected`: the API server refused (its Status message, reason and code);
  :class:`KubeNotFound` is the 404 case.
- :class:`KubeUnavailable`: the API server could not be reached or answered too slowly, or
  said it is overloaded or broken (5xx, 429). Transient: trying again later may work.
- :class:`KubeNotReady`: applied, but not made usable in time (a CRD never Established).
- :class:`DependencyFailed`: an object was not sent because something it needs failed first.
"""

from __future__ import annotations

import json
import ssl
import sys
from typing import Any

import urllib3.exceptions

MAX_BODY_IN_MESSAGE = 500
"""Characters of a non-Status error body quoted in a message."""


class KubeError(Exception):
    """Base of everything kube/ raises."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class KubeConfigError(KubeError):
    """No credentials to reach the cluster: a missing or broken kubeconfig or service account,
    or an exec credential plugin that fails."""


class ManifestError(KubeError):
    """A submitted manifest is invalid. ``where`` names the manifest and document (1-based)."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}" if where else problem)
        self.where = where
        self.problem = problem


class KubeRejected(KubeError):
    """The API server refused the request; ``message`` is its own Status message."""

    def __init__(self, message: str, *, code: int, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


class KubeNotFound(KubeRejected):
    """404: the object (or its namespace, or its kind) does not exist."""


class KubeUnavailable(KubeError):
    """The API server could not be reached, timed out, or answered 5xx/429. Transient.

    ``code`` is the HTTP status it answered (0: no answer); ``retry_after`` the seconds its
    ``Retry-After`` header asked us to wait (``None``: it did not say).
    """

    def __init__(self, message: str, *, code: int = 0, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after


class KubeNotReady(KubeError):
    """Applied, but the API server did not make it usable in time (a CRD not Established)."""


class DependencyFailed(KubeError):
    """Not sent to the API server because what it depends on (e.g. its CRD) failed."""


def _status_fields(body: bytes) -> tuple[str, str] | None:
    """``(message, reason)`` of a Kubernetes ``Status`` body, or ``None`` if it is not one."""
    try:
        data: Any = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("kind") != "Status":
        return None
    message = data.get("message")
    reason = data.get("reason")
    return (
        message if isinstance(message, str) else "",
        reason if isinstance(reason, str) else "",
    )


def from_response(
    code: int, body: bytes, *, write: bool = False, retry_after: float | None = None
) -> KubeError:
    """The error a non-2xx answer means (``retry_after``: its ``Retry-After``, in seconds).

    5xx and 429 are transient (:class:`KubeUnavailable`), except a 500 to a ``write`` whose
    Status carries no reason: the API server reports plain handler errors that way, and for a
    write they are about the object, not the server (server-side apply answers ``failed to create
    typed patch object ...: .spec.replicas: expected numeric (int or float), got string`` like
    that). Retrying would give the same answer, so it is a :class:`KubeRejected`. Storage and
    webhook failures carry a reason (``InternalError``, ``Timeout`` ...) and stay transient.
    """
    status = _status_fields(body)
    if status is not None and status[0]:
        message, reason = status
    else:
        text = body.decode("utf-8", "replace").strip()[:MAX_BODY_IN_MESSAGE]
        message, reason = f"HTTP {code}" + (f": {text}" if text else ""), ""
    if code == 404:
        return KubeNotFound(message, code=code, reason=reason)
    if write and code == 500 and status is not None and status[0] and not status[1]:
        return KubeRejected(message, code=code, reason=reason)
    if code == 429 or code >= 500:
        return KubeUnavailable(
            f"the API server answered {code}: {message}", code=code, retry_after=retry_after
        )
    return KubeRejected(message, code=code, reason=reason)


def _urllib3_message(exc: urllib3.exceptions.HTTPError) -> str:
    reason = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) else exc
    if isinstance(reason, urllib3.exceptions.SSLError | ssl.SSLError):
        return f"TLS with the API server failed: {reason}"
    if isinstance(reason, urllib3.exceptions.NewConnectionError):
        return f"cannot connect to the API server: {reason}"
    if isinstance(reason, urllib3.exceptions.TimeoutError):
        return f"the API server did not answer in time: {reason}"
    return f"connection to the API server failed: {reason}"


def _official_client_error(exc: BaseException) -> KubeError | None:
    """An ``ApiException`` of the official client, for code beside us that still calls it.

    Looked up, not imported: if one was raised, its module is loaded.
    """
    module = sys.modules.get("kubernetes.client.exceptions")
    api_exception = getattr(module, "ApiException", None)
    if api_exception is None or not isinstance(exc, api_exception):
        return None
    status = getattr(exc, "status", 0)
    if status:
        body = getattr(exc, "body", None)
        return from_response(int(status), body.encode() if isinstance(body, str) else b"")
    # status 0: it failed before any answer (it wraps TLS errors this way)
    reason = str(getattr(exc, "reason", "") or "").replace("\n", ": ")
    return KubeUnavailable(f"request to the API server failed: {reason}")


def from_library(exc: BaseException) -> KubeError:
    """Translate an exception of the HTTP stack (urllib3, ssl, sockets)."""
    if isinstance(exc, KubeError):
        return exc
    if isinstance(exc, urllib3.exceptions.HTTPError):
        return KubeUnavailable(_urllib3_message(exc))
    if isinstance(exc, ssl.SSLError):
        return KubeUnavailable(f"TLS with the API server failed: {exc}")
    if isinstance(exc, OSError):
        return KubeUnavailable(f"cannot talk to the API server: {exc}")
    translated = _official_client_error(exc)
    if translated is not None:
        return translated
    return KubeUnavailable(f"the HTTP client failed: {type(exc).__name__}: {exc}")


LIBRARY_ERRORS: tuple[type[BaseException], ...] = (
    urllib3.exceptions.HTTPError,
    OSError,  # includes ssl.SSLError, TimeoutError, ConnectionError
)
"""What the HTTP stack raises for a failed request; translated by :func:`from_library`."""
