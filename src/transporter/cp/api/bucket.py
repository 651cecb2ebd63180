"""A token bucket: the refusal log's budgets (:mod:`.access`)."""

from __future__ import annotations


class Bucket:
    """A token bucket: ``rate`` a second on average, ``burst`` at once."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.at: float | None = None
        self.left_out = 0

    def take(self, now: float) -> bool:
        since = 0.0 if self.at is None else now - self.at
        self.tokens = min(self.burst, self.tokens + since * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


__all__ = ["Bucket"]
