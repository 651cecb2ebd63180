"""When to dial again, where, and what to say about it: jittered exponential backoff between
rounds over the control plane's URLs, and one log line per outage (not one per attempt). Without
I/O; :mod:`.session` dials, sleeps and logs."""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence

import attrs


@attrs.frozen(kw_only=True)
class Backoff:
    """Delays between connection attempts: doubling from ``first`` up to ``cap``, each drawn
    between half and all of that (jitter), so that many agents do not return in step."""

    first: float = 1.0
    cap: float = 60.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        ceiling = min(self.cap, self.first * 2 ** min(attempt, 32))
        return rng.uniform(ceiling / 2, ceiling)


@attrs.frozen
class Line:
    level: int
    message: str


class Outages:
    """The state between connections: which of the control plane's URLs to dial, and when.
    Times are the caller's (``time.monotonic()``).

    The URLs are replicas of one control plane (or one URL behind a load balancer). A failed
    dial moves to the next URL at once, so a dead replica costs one refused connection; only
    after a whole round failed does the agent wait, with the backoff (one URL: after each
    failure, as a round is one dial). A connection that was up and ended also moves on to the
    next URL (its replica has likely died), after the backoff's first, jittered delay, so that
    the agents of a dead replica reach the others spread out rather than all at once."""

    def __init__(self, cp_urls: str | Sequence[str], backoff: Backoff, rng: random.Random) -> None:
        self.cp_urls = (cp_urls,) if isinstance(cp_urls, str) else tuple(cp_urls)
        assert self.cp_urls, "at least one control-plane URL"
        self.backoff = backoff
        self.rng = rng
        self._at = 0
        self._tried = 0
        """URLs that failed since the last wait (a round is over when all have)."""
        self._attempt = 0
        self._registered = False
        self._up_since: float | None = None
        self._outage_since: float | None = None
        self._reasons: dict[str, str] = {}

    @property
    def cp_url(self) -> str:
        """The URL to dial next (the one connected, while up)."""
        return self.cp_urls[self._at]

    def up(self, now: float, agent_id: str, heartbeat_interval: float) -> Line:
        """A connection to :attr:`cp_url` is registered: the first is said as such (also when
        URLs before it failed), the later ones as the end of an outage."""
        self._up_since = now
        outage, self._outage_since = self._outage_since, None
        self._reasons.clear()
        if self._registered and outage is not None:
            return Line(logging.INFO, f"reconnected to {self.cp_url} after {now - outage:.1f} s")
        self._registered = True
        return Line(
            logging.INFO,
            f"registered with {self.cp_url} as {agent_id}"
            f" (heartbeat every {heartbeat_interval:.0f} s)",
        )

    def down(self, now: float, reason: str) -> tuple[Line, float]:
        """A connection to :attr:`cp_url` ended, or could not be made, for ``reason``: what to
        log, and how long to wait before dialling the next URL (:attr:`cp_url` then). Logged
        once per outage, and again when why a URL fails changes (a connection closed, then
        refused from then on, says so)."""
        failed = self.cp_url
        was_up = self._up_since is not None
        if was_up:
            self._attempt = 0  # a connection that was up resets the backoff
            self._tried = 0
            self._up_since = None
        self._tried += 1
        self._at = (self._at + 1) % len(self.cp_urls)
        line = self._line(now, failed, reason)
        if was_up or self._tried >= len(self.cp_urls):
            self._tried = 0
            delay = self.backoff.delay(self._attempt, self.rng)
            self._attempt += 1
            return line, delay
        return line, 0.0

    def _line(self, now: float, failed: str, reason: str) -> Line:
        before = self._reasons.get(failed)
        self._reasons[failed] = reason
        then = "" if len(self.cp_urls) == 1 else f" (next: {self.cp_url})"
        if self._outage_since is None:
            self._outage_since = now
            message = f"control plane {failed}: {reason}; reconnecting with backoff{then}"
            return Line(logging.WARNING, message)
        if reason != before:
            return Line(logging.WARNING, f"control plane {failed} still unreachable: {reason}")
        return Line(logging.DEBUG, f"control plane {failed} still unreachable: {reason}")
