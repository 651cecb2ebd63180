"""Our own errors, named by whose fault it is. No exception of http.client, ssl or sockets
escapes kube/.

- :class:`ManifestError`: the submitted manifests are invalid (the producer's fault).
- :class:`KubeConfigError`: no usable kubeconfig or in-cluster account, or an exec credential
  plugin that fails (the operator's fault).
- :class:`KubeRejected`: the API server refused (its Status message, reason and code);
  :class:`KubeNotFound` is the 404 case.
- :class:`KubeUnavailable`: the API server could not be reached or answered too slowly, or
  said it is overloaded or broken (5xx, 429). Transient: trying again later may work.
- :class:`KubeNotReady`: applied, but not made usable in time (a CRD never Established).
- :class:`DependencyFailed`: an object was not sent because something it needs failed first.
- :class:`Drifted`: applying a plan, an object is not as the plan saw it, so it is not touched.
"""

from __future__ import annotations

import http.client
import json
import ssl
from typing import Any

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


class Drifted(KubeError):
    """Applying a plan: the object changed on the cluster since the plan saw it (or the plan
    does not list it), so it was not touched."""


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
    code: int,
    body: bytes,
    *,
    write: bool = False,
    retry_after: float | None = None,
    location: str | None = None,
) -> KubeError:
    """The error a non-2xx answer means (``retry_after``: its ``Retry-After``, in seconds;
    ``location``: its ``Location``).

    A redirect (3xx) is refused, never followed: it could carry our credentials elsewhere.

    5xx and 429 are transient (:class:`KubeUnavailable`), except a 500 to a ``write`` whose
    Status carries no reason: the API server reports plain handler errors that way, and for a
    write they are about the object, not the server (server-side apply answers ``failed to create
    typed patch object ...: .spec.replicas: expected numeric (int or float), got string`` like
    that). Retrying would give the same answer, so it is a :class:`KubeRejected`. Storage and
    webhook failures carry a reason (``InternalError``, ``Timeout`` ...) and stay transient.
    """
    if 300 <= code <= 399:
        to = f" to {location}" if location else ""
        return KubeRejected(
            f"the API server answered {code}, a redirect{to}: not followed", code=code
        )
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


def from_library(
    exc: BaseException, *, connecting: bool = False, proxy: str | None = None
) -> KubeError:
    """Translate an exception of the HTTP stack (http.client, ssl, sockets).

    ``connecting``: it came while connecting; ``proxy``: while reaching this proxy
    (``host:port``) or asking it for a tunnel.
    """
    if isinstance(exc, KubeError):
        return exc
    if isinstance(exc, ssl.SSLError):  # the certificate checks too
        peer = f"the proxy {proxy}" if proxy else "the API server"
        return KubeUnavailable(f"TLS with {peer} failed: {exc}")
    if connecting:
        via = f" through the proxy {proxy}" if proxy else ""
        return KubeUnavailable(f"cannot connect to the API server{via}: {_reason(exc)}")
    if isinstance(exc, TimeoutError):
        return KubeUnavailable(f"the API server did not answer in time: {_reason(exc)}")
    if isinstance(exc, OSError | http.client.HTTPException):
        return KubeUnavailable(f"connection to the API server failed: {_reason(exc)}")
    return KubeUnavailable(f"the HTTP client failed: {type(exc).__name__}: {exc}")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, http.client.HTTPException):
        text, name = str(exc), type(exc).__name__
        return text if text.startswith(name) else f"{name}: {text}" if text else name
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


LIBRARY_ERRORS: tuple[type[BaseException], ...] = (
    http.client.HTTPException,
    OSError,  # includes ssl.SSLError, TimeoutError, ConnectionError
)
"""What the HTTP stack raises for a failed request; translated by :func:`from_library`."""
