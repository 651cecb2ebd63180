"""JSON requests to the API server without blocking trio.

A request is made on trio's own sockets (:mod:`~transporter.kube.trio_client`), or, through a
proxy, in a worker thread (:mod:`~transporter.kube.client`); either way at most
:data:`MAX_THREADS` at once per target (one dedicated :class:`trio.CapacityLimiter`), inside
``trio.fail_after`` and with the client's own timeout, so a hung server costs at most the
timeout. Transient failures (:class:`KubeUnavailable`) are retried as the target's
:class:`~transporter.kube.retry.RetryPolicy` says, honouring ``Retry-After``; the error raised
in the end says how long we tried. Answers are JSON objects (dicts).
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import quote, urlencode

import attrs
import trio

from transporter import __version__
from transporter.kube.access import ClusterAccess
from transporter.kube.client import Answer, HttpClient
from transporter.kube.errors import KubeUnavailable, from_response
from transporter.kube.retry import (
    DEFAULT_RETRY,
    GiveUp,
    RetryPolicy,
    gave_up,
    next_delay,
    parse_retry_after,
    seconds,
)
from transporter.kube.trio_client import TrioClient

log = logging.getLogger(__name__)

WRITES = frozenset({"POST", "PUT", "PATCH"})
JSON = "application/json"
APPLY_PATCH = "application/apply-patch+yaml"
USER_AGENT = f"transporter/{__version__}"

THREAD_GRACE = 1.0
"""Seconds the trio deadline allows beyond the client's own timeout before abandoning it."""
MAX_THREADS = 4
"""Requests one target makes at once (its dedicated limiter, worker threads when through a
proxy), and so the connections it keeps between requests."""
SMALL_BODY = 64 * 1024
"""A body larger than about this is encoded to JSON in a worker thread (a manifest may be
megabytes), a smaller one at once."""


class RequestObserver(Protocol):
    """Told of every request's answer and retry (the agent's metrics). ``verb``: the HTTP
    method, lower case; ``outcome``: ``2xx`` … ``5xx`` by the answer's status, ``timeout`` or
    ``error`` (no answer)."""

    def kube_answered(self, verb: str, seconds: float, outcome: str) -> None: ...

    def kube_retried(self, verb: str) -> None: ...


@attrs.frozen
class Reply:
    """A successful answer: its HTTP status (2xx), its decoded JSON, and its size in bytes."""

    status: int
    body: Any
    size: int


class Transport:
    """JSON requests to one API server; owns the client and closes it in :meth:`close`."""

    def __init__(
        self,
        client: HttpClient,
        *,
        timeout: float,
        limiter: trio.CapacityLimiter,
        retry: RetryPolicy = DEFAULT_RETRY,
        native: bool = True,
    ) -> None:
        """``native``: requests on trio's sockets where they can be (else all in threads)."""
        self._client = client
        self._native = TrioClient(client, limiter=limiter) if native else None
        self.timeout = timeout
        self._limiter = limiter
        self.retry = retry
        self.observer: RequestObserver | None = None

    @property
    def server(self) -> str:
        """The API server's URL."""
        return self._client.server

    async def _once(
        self,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]],
        body: Mapping[str, Any] | None,
        content_type: str,
        headers: Mapping[str, str] | None,
    ) -> Reply:
        target = path + ("?" + urlencode(list(query), quote_via=quote) if query else "")
        sent = {"Accept": JSON, "Content-Type": content_type, "User-Agent": USER_AGENT}
        sent.update(headers or {})  # impersonation

        native = self._native
        if native is not None and native.serves():

            async def run() -> Answer:
                return await native.request(
                    method, target, headers=sent, body=await _encoded(body), timeout=self.timeout
                )

        else:

            def blocking() -> Answer:
                # Encoded here, not in trio's thread: a manifest may be megabytes.
                return self._client.request(
                    method, target, headers=sent, body=_json(body), timeout=self.timeout
                )

            async def run() -> Answer:
                return await trio.to_thread.run_sync(
                    blocking, limiter=self._limiter, abandon_on_cancel=True
                )

        answer = await self._send(method, path, run)
        status, data = answer.status, answer.data
        if not 200 <= status <= 299:
            asked = parse_retry_after(answer.retry_after, now=time.time())
            raise from_response(
                status, data, write=method in WRITES, retry_after=asked, location=answer.location
            )
        try:
            return Reply(status, json.loads(data) if data else {}, len(data))
        except ValueError:
            raise KubeUnavailable(
                f"the API server answered {method} {path} with something that is not JSON"
            ) from None

    async def _send(self, method: str, path: str, run: Callable[[], Awaitable[Answer]]) -> Answer:
        """``run``, within the timeout; its answer told to the observer."""
        started = time.perf_counter()
        outcome = "error"
        try:
            with trio.fail_after(self.timeout + THREAD_GRACE):
                answer = await run()
            outcome = f"{answer.status // 100}xx" if 100 <= answer.status <= 599 else "error"
            return answer
        except trio.TooSlowError:
            outcome = "timeout"
            raise KubeUnavailable(
                f"the API server did not answer {method} {path} within {self.timeout:g} s"
            ) from None
        finally:
            if self.observer is not None:
                self.observer.kube_answered(method.lower(), time.perf_counter() - started, outcome)

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: Mapping[str, Any] | None = None,
        content_type: str = JSON,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """The decoded JSON answer; :class:`KubeRejected` or :class:`KubeUnavailable` else.

        ``headers`` are sent beside ours (impersonation: ``Impersonate-User``).

        Transient failures are tried again as ``retry`` (default: the transport's policy)
        says; the :class:`KubeUnavailable` raised in the end is the last failure, saying how
        many tries over how long (unless the policy allows only one).
        """
        reply = await self.exchange(
            method,
            path,
            query=query,
            body=body,
            content_type=content_type,
            retry=retry,
            headers=headers,
        )
        return reply.body

    async def exchange(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: Mapping[str, Any] | None = None,
        content_type: str = JSON,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        on_retry: Callable[[KubeUnavailable], None] | None = None,
    ) -> Reply:
        """As :meth:`request`, with the answer's HTTP status (a server-side apply answers 201
        when it created the object) and size. ``on_retry`` is told of each failure that is
        tried again (a write may have been done, its answer lost)."""
        policy = retry if retry is not None else self.retry
        start = trio.current_time()
        tries = 0
        while True:
            tries += 1
            try:
                return await self._once(method, path, query, body, content_type, headers)
            except KubeUnavailable as exc:
                elapsed = trio.current_time() - start
                wait = next_delay(
                    policy,
                    tries=tries,
                    elapsed=elapsed,
                    retry_after=exc.retry_after,
                    rand=random.random(),  # noqa: S311 (jitter)
                )
                if isinstance(wait, GiveUp):
                    message = gave_up(exc.message, tries=tries, elapsed=elapsed, why=wait.why)
                    raise KubeUnavailable(
                        message, code=exc.code, retry_after=exc.retry_after
                    ) from None
                if self.observer is not None:
                    self.observer.kube_retried(method.lower())
                if on_retry is not None:
                    on_retry(exc)
                # The server's own message may quote what we sent: only its code is logged.
                what = f"the API server answered {exc.code}" if exc.code else exc.message
                log.warning(
                    "%s %s: %s; attempt %d of %d failed, trying again in %s s",
                    method,
                    path,
                    what,
                    tries,
                    policy.attempts,
                    seconds(wait),
                )
            await trio.sleep(wait)

    async def get(self, path: str, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        answer = await self.request("GET", path, headers=headers)
        return answer if isinstance(answer, dict) else {}

    def close(self) -> None:
        """Close idle connections (no I/O to wait for, so not in a thread).

        Requests still running in abandoned threads end with their own timeout.
        """
        if self._native is not None:
            self._native.close()
        self._client.close()


def _json(body: Mapping[str, Any] | None) -> bytes | None:
    """``body`` as JSON: JSON is YAML too, so server-side apply takes it."""
    return None if body is None else json.dumps(body).encode()


async def _encoded(body: Mapping[str, Any] | None) -> bytes | None:
    """:func:`_json`, in a worker thread for a large body."""
    if body is None or _small(body):
        return _json(body)
    return await trio.to_thread.run_sync(_json, body)


def _small(value: object, budget: int = SMALL_BODY) -> bool:
    """Whether ``value`` encodes to about ``budget`` bytes at most: its strings' lengths and
    its items counted, stopping as soon as the budget is spent."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            budget -= len(item) + 3
        elif isinstance(item, Mapping | list | tuple):
            budget -= len(item) + 1
            if budget >= 0:  # a huge one is not copied onto the stack
                stack.extend(item.items() if isinstance(item, Mapping) else item)
        else:
            budget -= 8
        if budget < 0:
            return False
    return True


def new_transport(
    configuration: ClusterAccess,
    *,
    timeout: float,
    limiter: trio.CapacityLimiter,
    retry: RetryPolicy = DEFAULT_RETRY,
) -> Transport:
    """A transport to the API server of ``configuration`` (no I/O until the first request)."""
    client = HttpClient(configuration, max_idle=MAX_THREADS)
    return Transport(client, timeout=timeout, limiter=limiter, retry=retry)
