"""When to try a request to the API server again: the policy, and the arithmetic of it. No I/O.

Only transient failures are retried (:class:`~transporter.kube.errors.KubeUnavailable`: no
connection, no answer in time, 429, 5xx); a refusal (:class:`~transporter.kube.errors.KubeRejected`)
would be refused again. Our requests are GET, server-side apply (PATCH) and DELETE, which are
safe to repeat when an answer was lost.

The wait before retry ``n`` is ``first_delay * 2 ** (n - 1)``, at most ``max_delay``, made up to
``jitter`` shorter at random (so that many agents cut off together do not come back in step),
and never shorter than the server's ``Retry-After`` (read on 429 and 5xx answers alike, as
client-go does; the API server sends it with 429 and with some 5xx). We give up when the tries
are used up, when the next try would start after ``budget``, or when the server asks us to
wait longer than ``max_retry_after``.
"""

from __future__ import annotations

import datetime
import email.utils

import attrs
from attrs import validators as v


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How long one request keeps trying while the API server is unavailable.

    The defaults ride out an API server restart or a short network outage (tens of seconds)
    and still fail an event within about a minute, with the reason, when the cluster stays away.
    """

    attempts: int = attrs.field(default=10, validator=v.ge(1))
    """Tries at most, the first included. 1: never retry. Bounds fast failures (connection
    refused) that the budget alone would let happen many times."""

    budget: float = attrs.field(default=45.0, validator=v.ge(0))
    """Seconds after the first try within which a retry may start. An API server restart,
    or an etcd leader election, usually ends in well under this; past it, the event should fail
    and say why rather than hang. A try started in time runs to its own timeout, so the longest
    one request can take is ``budget`` plus one request timeout."""

    first_delay: float = attrs.field(default=0.5, validator=v.ge(0))
    """Seconds before the first retry; doubled for each retry after it. Short, because most
    failures (a dropped connection, one overloaded answer) are over by then."""

    max_delay: float = attrs.field(default=8.0, validator=v.ge(0))
    """Seconds between tries at most (before jitter), so that a server back after an outage is
    noticed within this."""

    jitter: float = attrs.field(default=0.2, validator=[v.ge(0), v.lt(1)])
    """Each computed delay is made shorter by up to this fraction, at random. Does not apply
    to what ``Retry-After`` asks for."""

    max_retry_after: float = attrs.field(default=30.0, validator=v.ge(0))
    """Seconds of ``Retry-After`` we accept. A server asking for longer (or a broken or hostile
    header asking for hours) makes us give up at once, saying so, instead of stalling."""


DEFAULT_RETRY = RetryPolicy()
NO_RETRY = RetryPolicy(attempts=1)


@attrs.frozen
class GiveUp:
    """No further try; ``why`` adds to the message when the limits alone are not the reason."""

    why: str = ""


def next_delay(
    policy: RetryPolicy, *, tries: int, elapsed: float, retry_after: float | None, rand: float
) -> float | GiveUp:
    """Seconds to wait before the next try, after ``tries`` failed ones, or :class:`GiveUp`.

    ``elapsed``: seconds since the first try started; ``retry_after``: what the last answer's
    ``Retry-After`` asked for (``None`` if it had none); ``rand``: a random number in [0, 1).
    """
    if tries >= policy.attempts:
        return GiveUp()
    if retry_after is not None and retry_after > policy.max_retry_after:
        return GiveUp(
            f"it asked us to retry after {seconds(retry_after)} s,"
            f" longer than the {seconds(policy.max_retry_after)} s we wait"
        )
    backoff = min(policy.first_delay * 2.0 ** min(tries - 1, 64), policy.max_delay)
    delay = backoff * (1 - policy.jitter * rand)
    if retry_after is not None and retry_after >= delay:
        if elapsed + retry_after > policy.budget:
            return GiveUp(
                f"it asked us to retry after {seconds(retry_after)} s,"
                f" past the {seconds(policy.budget)} s we retry for"
            )
        return retry_after
    if elapsed + delay > policy.budget:
        return GiveUp()
    return delay


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds a ``Retry-After`` header asks for: delta-seconds, or an HTTP-date (RFC 9110).

    ``now`` is the wall-clock time (:func:`time.time`) the answer came. ``None`` when there is
    no header or it is malformed; a date in the past asks for 0.
    """
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)  # never fails: a number too long for a float is inf
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000": UTC, by the RFC
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, when.timestamp() - now)


def gave_up(message: str, *, tries: int, elapsed: float, why: str = "") -> str:
    """``message`` of the last failure, with how long we tried: for the event's status."""
    if tries == 1 and not why:
        return message
    noun = "attempt" if tries == 1 else "attempts"
    because = f": {why}" if why else ""
    return f"{message} (gave up after {tries} {noun} over {seconds(elapsed)} s{because})"


def seconds(value: float) -> str:
    """``0.05``, ``2.5``, ``12``: two digits below ten seconds, whole seconds above."""
    if value < 1:
        return f"{value:.2f}"
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"
