"""Requests to the API server without blocking trio: the only module that calls the client.

Every request runs in a worker thread (one dedicated :class:`trio.CapacityLimiter` per target),
inside ``trio.fail_after`` and with the client's own ``_request_timeout``, so a hung server
costs at most the timeout. Transient failures (:class:`KubeUnavailable`) are retried a few
times with jittered exponential backoff, then raised. Answers are JSON objects (dicts).
"""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Mapping, Sequence
from typing import Any

import trio
from kubernetes import client as k8s

from transporter.kube.errors import (
    LIBRARY_ERRORS,
    KubeUnavailable,
    from_library,
    from_response,
)

WRITES = frozenset({"POST", "PUT", "PATCH"})
JSON = "application/json"
APPLY_PATCH = "application/apply-patch+yaml"

DEFAULT_ATTEMPTS = 3
BACKOFF_BASE = 0.5
"""Seconds before the first retry; doubled each time, with up to 25 % jitter."""
THREAD_GRACE = 1.0
"""Seconds the trio deadline allows beyond the client's own timeout before abandoning it."""
MAX_THREADS = 4
"""Worker threads one target uses at most (its dedicated limiter)."""


def _call(
    api: k8s.ApiClient,
    method: str,
    path: str,
    query: Sequence[tuple[str, str]],
    body: Mapping[str, Any] | None,
    content_type: str,
    timeout: float,
) -> tuple[int, bytes]:
    """One blocking HTTP request (in a worker thread). Errors come back as our own."""
    try:
        request = api.param_serialize(
            method,
            path,
            query_params=list(query),
            header_params={"Accept": JSON, "Content-Type": content_type},
            body=dict(body) if body is not None else None,
            auth_settings=["BearerToken"],
        )
        response = api.call_api(*request, _request_timeout=timeout)
        try:
            data = response.read()  # type: ignore[no-untyped-call]
        except BaseException:
            response.response.close()  # a half-read connection must not go back to the pool
            raise
        response.response.release_conn()
        return int(response.status), bytes(data or b"")
    except LIBRARY_ERRORS as exc:
        raise from_library(exc) from None


class Transport:
    """JSON requests to one API server; owns the client and closes it in :meth:`close`."""

    def __init__(
        self, api: k8s.ApiClient, *, timeout: float, limiter: trio.CapacityLimiter
    ) -> None:
        self._api = api
        self.timeout = timeout
        self._limiter = limiter

    @property
    def server(self) -> str:
        """The API server's URL."""
        return str(self._api.configuration.host)

    async def _once(
        self,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]],
        body: Mapping[str, Any] | None,
        content_type: str,
    ) -> Any:
        def run() -> tuple[int, bytes]:
            return _call(self._api, method, path, query, body, content_type, self.timeout)

        try:
            with trio.fail_after(self.timeout + THREAD_GRACE):
                status, data = await trio.to_thread.run_sync(
                    run, limiter=self._limiter, abandon_on_cancel=True
                )
        except trio.TooSlowError:
            raise KubeUnavailable(
                f"the API server did not answer {method} {path} within {self.timeout:g} s"
            ) from None
        if not 200 <= status <= 299:
            raise from_response(status, data, write=method in WRITES)
        try:
            return json.loads(data) if data else {}
        except ValueError:
            raise KubeUnavailable(
                f"the API server answered {method} {path} with something that is not JSON"
            ) from None

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: Mapping[str, Any] | None = None,
        content_type: str = JSON,
        attempts: int = DEFAULT_ATTEMPTS,
    ) -> Any:
        """The decoded JSON answer; :class:`KubeRejected` or :class:`KubeUnavailable` else."""
        attempt = 1
        while True:
            try:
                return await self._once(method, path, query, body, content_type)
            except KubeUnavailable:
                if attempt >= attempts:
                    raise
            delay = BACKOFF_BASE * 2 ** (attempt - 1)
            await trio.sleep(delay * (1 + random.random() / 4))  # noqa: S311 (jitter)
            attempt += 1

    async def get(self, path: str) -> dict[str, Any]:
        answer = await self.request("GET", path)
        return answer if isinstance(answer, dict) else {}

    def close(self) -> None:
        """Close the client's idle connections (no I/O to wait for, so not in a thread).

        Requests still running in abandoned threads end with their own timeout.
        """
        _close(self._api)


def _close(api: k8s.ApiClient) -> None:
    with contextlib.suppress(*LIBRARY_ERRORS):
        api.close()  # type: ignore[no-untyped-call]


def new_transport(
    configuration: k8s.Configuration, *, timeout: float, limiter: trio.CapacityLimiter
) -> Transport:
    """A transport over a fresh client (building it does no I/O, so not in a thread)."""
    try:
        api = k8s.ApiClient(configuration)
    except LIBRARY_ERRORS as exc:  # e.g. an unusable proxy setting
        raise from_library(exc) from None
    return Transport(api, timeout=timeout, limiter=limiter)
