"""When to dial again, and what to say about it: jittered exponential backoff, and one log line
per outage (not one per attempt). Without I/O; :mod:`.session` sleeps and logs."""

from __future__ import annotations

import logging
import random

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
    """The state between connections. Times are the caller's (``time.monotonic()``)."""

    def __init__(self, cp_url: str, backoff: Backoff, rng: random.Random) -> None:
        self.cp_url = cp_url
        self.backoff = backoff
        self.rng = rng
        self._attempt = 0
        self._up_since: float | None = None
        self._outage_since: float | None = None
        self._reason = ""

    def up(self, now: float, agent_id: str, heartbeat_interval: float) -> Line:
        """A connection is registered."""
        self._up_since = now
        if self._outage_since is not None:
            line = Line(
                logging.INFO,
                f"reconnected to {self.cp_url} after {now - self._outage_since:.1f} s",
            )
            self._outage_since = None
            return line
        return Line(
            logging.INFO,
            f"registered with {self.cp_url} as {agent_id}"
            f" (heartbeat every {heartbeat_interval:.0f} s)",
        )

    def down(self, now: float, reason: str) -> tuple[Line, float]:
        """A connection ended, or could not be made, for ``reason``: what to log, and how long
        to wait before the next attempt. Logged once per outage, and again when why changes
        (a connection closed, then refused from then on, says so)."""
        if self._up_since is not None:
            self._attempt = 0  # a connection that was up resets the backoff
            self._up_since = None
        if self._outage_since is None:
            self._outage_since = now
            line = Line(
                logging.WARNING,
                f"control plane {self.cp_url}: {reason}; reconnecting with backoff",
            )
        elif reason != self._reason:
            line = Line(logging.WARNING, f"control plane {self.cp_url} still unreachable: {reason}")
        else:
            line = Line(logging.DEBUG, f"control plane still unreachable: {reason}")
        self._reason = reason
        delay = self.backoff.delay(self._attempt, self.rng)
        self._attempt += 1
        return line, delay
