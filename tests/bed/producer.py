"""A producer that behaves like a real one when the control plane crashes: every event has its
own fixed id, and a request that fails (connection refused or cut, 5xx) is sent again, with the
same id and body, until the control plane gives a final answer. ``POST /events`` is idempotent
by id: 202 when it stores the event, 200 ``exists`` when an earlier attempt stored it and its
answer was lost, 409 when the id is taken by another body (a bug here: bodies never change)."""

from __future__ import annotations

import http.client
import json
import ssl
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs

RETRY_DELAY = 0.05
"""Seconds between attempts at one event: a real producer's pause, not a wait for a state."""
REQUEST_TIMEOUT = 30.0
FAILURES_KEPT = 5


class Unanswered(Exception):
    """No HTTP answer: refused, cut, timed out."""


@attrs.frozen
class ApiAccess:
    """The control plane's HTTP API as a client reaches it: where, and with which token."""

    url: str
    """``https://HOST:PORT`` (or ``http://`` with ``--insecure-plain-http``)."""
    token: str = attrs.field(repr=False)
    """Sent as ``Authorization: Bearer`` with every request."""
    ca_file: Path | None = None
    """The CA of the API's certificate."""

    def connection(self, timeout: float) -> http.client.HTTPConnection:
        parts = urlsplit(self.url)
        if parts.scheme == "http":
            return http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
        context = ssl.create_default_context(
            cafile=None if self.ca_file is None else str(self.ca_file)
        )
        return http.client.HTTPSConnection(
            parts.hostname or "", parts.port, timeout=timeout, context=context
        )


def call(
    api: ApiAccess, method: str, path: str, body: Any = None, *, timeout: float = 60.0
) -> tuple[int, Any]:
    """One request on a connection of its own (the server may be a new process each time)."""
    connection = api.connection(timeout)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {api.token}"}
    try:
        data = None if body is None else json.dumps(body)
        connection.request(method, path, body=data, headers=headers)
        answer = connection.getresponse()
        text = answer.read()
    except (OSError, http.client.HTTPException) as exc:
        raise Unanswered(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
    finally:
        connection.close()
    try:
        return answer.status, json.loads(text)
    except ValueError:
        return answer.status, {"error": "not_json", "message": text[:200].decode(errors="replace")}


@attrs.define
class Outcome:
    """What the producer heard."""

    accepted: list[str] = attrs.field(factory=list)
    """Ids answered 202 (stored now) or 200 ``exists`` (stored by an earlier attempt)."""
    existed: int = 0
    """Of ``accepted``, those answered 200 ``exists``."""
    refused: dict[str, str] = attrs.field(factory=dict)
    """Ids given a final answer other than those (409 conflict, 4xx): event id -> the answer."""
    answers: Counter[str] = attrs.field(factory=Counter)
    """Every attempt's result: ``"202"``, ``"503"``, ``"unanswered"``…"""
    attempts: int = 0
    failures: deque[str] = attrs.field(factory=lambda: deque(maxlen=FAILURES_KEPT))
    """The last attempts that got no final answer, and why: what a stuck stream shows."""


class Producer:
    """Submits ``bodies`` (each with its ``id``) in order, from a thread, one request at a time:
    event ``i`` not before ``i * pace`` seconds after :meth:`start`, so that the stream lasts.
    ``batch`` > 1: that many events per ``POST /events/batch`` (one durable write each)."""

    def __init__(
        self, api: ApiAccess, bodies: Sequence[dict[str, Any]], *, pace: float, batch: int = 1
    ) -> None:
        self.api = api
        self.bodies = list(bodies)
        self.pace = pace
        self.batch = batch
        self.outcome = Outcome()
        self._progress = threading.Condition()
        """Notified after every attempt, for the tests that wait for the stream to get somewhere."""
        self._failed_attempts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="producer")

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(
                f"the producer is still at event {len(self.outcome.accepted)} after {timeout} s;"
                f" answers so far: {dict(self.outcome.answers)};"
                f" the last failures: {list(self.outcome.failures)}"
            )

    def cancel(self) -> None:
        self._stop.set()

    @property
    def done(self) -> bool:
        """Whether every event has had its final answer (or the producer was cancelled)."""
        return self._thread.ident is not None and not self._thread.is_alive()

    @property
    def failed_attempts(self) -> int:
        """Attempts that got no final answer: no answer at all, or 5xx."""
        with self._progress:
            return self._failed_attempts

    def wait_for_failures(self, count: int, timeout: float) -> None:
        """Until ``count`` attempts in all have failed."""
        self._wait(lambda: self._failed_attempts >= count, f"{count} failed attempts", timeout)

    def wait_for_accepted(self, count: int, timeout: float) -> None:
        """Until ``count`` events in all have been accepted."""
        self._wait(lambda: len(self.outcome.accepted) >= count, f"{count} accepted", timeout)

    def _wait(self, done: Callable[[], bool], what: str, timeout: float) -> None:
        with self._progress:
            if not self._progress.wait_for(lambda: done() or not self._thread.is_alive(), timeout):
                raise TimeoutError(
                    f"not {what} after {timeout} s: {len(self.outcome.accepted)} accepted,"
                    f" answers {dict(self.outcome.answers)}"
                )
            if not done():
                raise RuntimeError(f"the producer ended before {what}")

    def _run(self) -> None:
        begin = time.monotonic()
        for first in range(0, len(self.bodies), self.batch):
            due = begin + first * self.pace
            while not self._stop.is_set() and time.monotonic() < due:
                self._stop.wait(due - time.monotonic())
            if self._stop.is_set():
                return
            self._submit(self.bodies[first : first + self.batch])

    def _submit(self, bodies: list[dict[str, Any]]) -> None:
        while not self._stop.is_set():
            final = self._attempt(bodies) if self.batch > 1 else self._attempt_one(bodies[0])
            with self._progress:
                self._failed_attempts += not final
                self._progress.notify_all()
            if final:
                return
            self._stop.wait(RETRY_DELAY)

    def _post(self, path: str, body: Any) -> tuple[int, Any] | None:
        """The answer, or ``None`` when it is not final (no answer, 5xx)."""
        self.outcome.attempts += 1
        try:
            status, answer = call(self.api, "POST", path, body, timeout=REQUEST_TIMEOUT)
        except Unanswered as exc:
            self.outcome.answers["unanswered"] += 1
            self.outcome.failures.append(f"{time.monotonic():.1f} {exc}")
            return None
        self.outcome.answers[str(status)] += 1
        if status >= 500:
            self.outcome.failures.append(f"{time.monotonic():.1f} {status}: {answer}")
            return None
        return status, answer

    def _attempt_one(self, body: dict[str, Any]) -> bool:
        """One ``POST /events``; whether its answer is final."""
        answered = self._post("/events", body)
        if answered is None:
            return False
        status, answer = answered
        expected = "accepted" if status == 202 else "exists" if status == 200 else None
        self._record(str(body["id"]), answer, expected, f"{status}: {answer}")
        return True

    def _attempt(self, bodies: list[dict[str, Any]]) -> bool:
        """One ``POST /events/batch``; whether its answer is final."""
        answered = self._post("/events/batch", {"events": bodies})
        if answered is None:
            return False
        status, answer = answered
        results = answer.get("results") if status in (202, 207) else None
        if not isinstance(results, list) or len(results) != len(bodies):
            results = [{} for _ in bodies]
        for body, result in zip(bodies, results, strict=True):
            expected = (
                result.get("status") if result.get("status") in ("accepted", "exists") else None
            )
            self._record(str(body["id"]), result, expected, f"{status}: {result or answer}")
        return True

    def _record(self, event_id: str, answer: Any, status: str | None, refusal: str) -> None:
        """An event's final answer: accepted when it says ``status`` of ``event_id``."""
        outcome = self.outcome
        if (
            status is not None
            and answer.get("status") == status
            and answer.get("event_id") == event_id
        ):
            outcome.accepted.append(event_id)
            outcome.existed += status == "exists"
        else:
            outcome.refused[event_id] = refusal
