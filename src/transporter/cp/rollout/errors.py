"""What the rollout engine refuses, each for one answer of the API (the code in each docstring)."""

from __future__ import annotations

from collections.abc import Sequence

from transporter.protocol.model import EventState


class RolloutError(Exception):
    """Base of the engine's refusals; the message is for the client, on one line."""


class NoMatch(RolloutError):
    """400 ``no_match``: the selector or list matched no agent, and ``allow_empty`` was not
    given."""


class NotCovered(RolloutError):
    """403: the caller's token does not reach every agent the rollout targets (or, ``agents``
    empty, every agent a standing rollout may still take); nothing was stored. ``agents``:
    those it does not reach, sorted."""

    def __init__(self, agents: Sequence[str], message: str = "") -> None:
        self.agents = sorted(agents)
        shown = ", ".join(repr(agent) for agent in self.agents[:10])
        more = f" and {len(self.agents) - 10} more" if len(self.agents) > 10 else ""
        super().__init__(message or f"your token may not target agent(s) {shown}{more}")


class UnknownRollout(RolloutError, KeyError):
    """404: no rollout (or plan) has this id."""

    def __init__(self, rollout_id: str) -> None:
        super().__init__(f"no rollout {rollout_id!r}")
        self.rollout_id = rollout_id

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class UnknownEvent(RolloutError, KeyError):
    """404: no event has this id."""

    def __init__(self, event_id: str) -> None:
        super().__init__(f"no event {event_id!r}")
        self.event_id = event_id

    def __str__(self) -> str:
        return str(self.args[0])


class NothingToApprove(RolloutError):
    """409: the rollout does not wait for an approval (of that wave)."""


class NotCancellable(RolloutError):
    """409 ``not_cancellable``: the event was sent already (it may be running on its agent, and
    ends as it ends there) or is final. ``state``: where it stands."""

    def __init__(self, event_id: str, state: EventState) -> None:
        why = "it was sent to its agent already" if not state.terminal else "it has ended"
        super().__init__(f"event is {state.value}: {why}, only a queued event can be cancelled")
        self.event_id = event_id
        self.state = state


class PlanNotReady(RolloutError):
    """409: the plan has not finished on every cluster yet."""


class PlanExpired(RolloutError):
    """410 ``plan_expired``: the plan's ``ttl`` has passed; what it saw may be stale."""


class NotAPlan(RolloutError):
    """404 (or 400): the id names a rollout that is not a plan."""


class TooMany(RolloutError):
    """400: the selector matched more agents than one rollout takes
    (:data:`~.targets.MAX_CLUSTERS`)."""
