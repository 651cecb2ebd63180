"""The retry policy's arithmetic and the Retry-After header: pure, no cluster."""

from __future__ import annotations

import email.utils

import pytest

from transporter.kube import RetryPolicy
from transporter.kube.retry import DEFAULT_RETRY, GiveUp, gave_up, next_delay, parse_retry_after

NOW = 1_750_000_000.0
POLICY = RetryPolicy(attempts=6, budget=10.0, first_delay=0.5, max_delay=2.0, jitter=0.2)


def delay(
    tries: int, *, elapsed: float = 0.0, retry_after: float | None = None, rand: float = 0.0
) -> float | GiveUp:
    return next_delay(POLICY, tries=tries, elapsed=elapsed, retry_after=retry_after, rand=rand)


def test_delays_double_up_to_the_cap() -> None:
    assert [delay(tries) for tries in range(1, 6)] == [0.5, 1.0, 2.0, 2.0, 2.0]


def test_jitter_only_shortens_a_delay_and_by_at_most_its_fraction() -> None:
    assert delay(3, rand=0.5) == pytest.approx(2.0 * 0.9)
    assert delay(3, rand=0.999) == pytest.approx(2.0 * 0.8, abs=0.001)


def test_the_tries_are_bounded() -> None:
    assert delay(6) == GiveUp()
    assert next_delay(RetryPolicy(attempts=1), tries=1, elapsed=0, retry_after=None, rand=0) == (
        GiveUp()
    )


def test_no_retry_starts_after_the_budget() -> None:
    assert delay(2, elapsed=8.9) == 1.0
    assert delay(2, elapsed=9.1) == GiveUp()


def test_retry_after_is_waited_in_full_when_longer_than_the_backoff() -> None:
    assert delay(1, retry_after=1.0) == 1.0
    assert delay(1, retry_after=1.0, rand=0.999) == 1.0  # jitter never shortens what was asked
    assert delay(3, retry_after=1.0) == 2.0  # the backoff is longer: it wins
    assert delay(1, retry_after=0.0) == 0.5


def test_a_retry_after_beyond_the_cap_gives_up_at_once_saying_so() -> None:
    hostile = RetryPolicy(max_retry_after=30.0)
    assert next_delay(hostile, tries=1, elapsed=0, retry_after=3600.0, rand=0) == GiveUp(
        "it asked us to retry after 3600 s, longer than the 30 s we wait"
    )
    assert next_delay(hostile, tries=1, elapsed=0, retry_after=float("inf"), rand=0) == GiveUp(
        "it asked us to retry after inf s, longer than the 30 s we wait"
    )


def test_a_retry_after_past_the_budget_gives_up_saying_so() -> None:
    assert delay(2, elapsed=8.0, retry_after=3.0) == GiveUp(
        "it asked us to retry after 3.0 s, past the 10 s we retry for"
    )


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("1", 1.0),
        (" 120 ", 120.0),
        ("0", 0.0),
        (email.utils.formatdate(NOW + 90, usegmt=True), 90.0),
        (email.utils.formatdate(NOW + 5, localtime=True), 5.0),  # any zone is read right
        ("Sun, 06 Nov 1994 08:49:37 GMT", 0.0),  # in the past: now
        ("99999999999999999999999999", 1e26),
        (None, None),
        ("", None),
        ("soon", None),
        ("-1", None),
        ("1.5", None),  # delta-seconds are whole
        ("٣", None),  # a digit, but not an ASCII one
    ],
)
def test_retry_after_in_both_forms(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == seconds


def test_the_message_says_how_long_we_tried() -> None:
    message = "the API server answered 503: the server is currently unable to handle the request"
    assert (
        gave_up(message, tries=6, elapsed=20.4) == f"{message} (gave up after 6 attempts over 20 s)"
    )
    assert (
        gave_up(message, tries=3, elapsed=1.23)
        == f"{message} (gave up after 3 attempts over 1.2 s)"
    )
    assert gave_up(message, tries=4, elapsed=0.347) == (
        f"{message} (gave up after 4 attempts over 0.35 s)"
    )
    assert gave_up(message, tries=1, elapsed=0.01) == message  # not retried: nothing to add
    assert gave_up(message, tries=1, elapsed=0.01, why="it asked us to retry after 3600 s") == (
        f"{message} (gave up after 1 attempt over 0.01 s: it asked us to retry after 3600 s)"
    )


def test_the_defaults_ride_out_half_a_minute_and_give_up_within_the_budget() -> None:
    """An API server restart: the last retry comes after 30 s, none after the 45 s budget."""
    for rand in (0.0, 0.999):  # the longest and the shortest delays
        elapsed, tries = 0.0, 1
        while not isinstance(
            wait := next_delay(
                DEFAULT_RETRY, tries=tries, elapsed=elapsed, retry_after=None, rand=rand
            ),
            GiveUp,
        ):
            assert wait <= DEFAULT_RETRY.max_delay
            elapsed += wait
            tries += 1
        assert 30.0 <= elapsed <= DEFAULT_RETRY.budget
        assert tries <= DEFAULT_RETRY.attempts


@pytest.mark.parametrize(
    "bad",
    [{"attempts": 0}, {"budget": -1.0}, {"jitter": 1.0}, {"first_delay": -0.1}],
)
def test_a_policy_that_makes_no_sense_is_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        RetryPolicy(**bad)  # type: ignore[arg-type]
