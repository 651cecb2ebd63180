"""The engine's task: which rollouts to move, and when.

Rung for one rollout (accepted, a child ended, approved, cancelled) it moves that one soon;
every ``reconcile_interval`` it moves every open rollout (reports written by other replicas,
expiries, pauses that are over); agents that registered here, and every ``sweep_interval`` all
known agents (those that registered with another replica), are offered to the standing
rollouts. What is rung while a pass runs is taken by the next pass, so that a thousand children
ending together make a few steps, not a thousand.
"""

from __future__ import annotations

import logging

import trio

from transporter.cp.live import Doorbell
from transporter.cp.rollout.mover import Conflicted, Mover
from transporter.protocol.model import AgentInfo
from transporter.store.base import Store, StoreUnavailable

log = logging.getLogger(__name__)

RECONCILE_INTERVAL = 2.0
"""Seconds between looks at every open rollout (other replicas' reports, expiries, pauses)."""
SWEEP_INTERVAL = 10.0
"""Seconds between looks for agents that registered with another replica (standing rollouts)."""
ARRIVALS = 10_000
"""Registrations kept for the next pass at most; past it, the next pass reads every agent."""


class Runner:
    def __init__(
        self,
        store: Store,
        mover: Mover,
        *,
        reconcile_interval: float = RECONCILE_INTERVAL,
        sweep_interval: float = SWEEP_INTERVAL,
    ) -> None:
        self.store = store
        self.mover = mover
        self.reconcile_interval = reconcile_interval
        self.sweep_interval = sweep_interval
        self._bell = Doorbell()
        self._rung: set[str] = set()
        self._arrived: dict[str, AgentInfo] = {}
        self._everything = True
        """Move every open rollout in the next pass (at start: a restart resumes them)."""
        self._sweep = True
        self._outage = False
        self._nursery: trio.Nursery | None = None
        self._waking: set[str] = set()
        """Rollouts whose pause a task waits out (one each)."""

    def ring(self, rollout_id: str) -> None:
        self._rung.add(rollout_id)
        self._bell.ring()

    def arrived(self, info: AgentInfo) -> None:
        if len(self._arrived) >= ARRIVALS:
            self._sweep = True
        else:
            self._arrived[info.id] = info
        self._bell.ring()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._tick)
            self._bell.ring()  # a first pass at once: a restart resumes the open rollouts
            task_status.started()
            while True:
                await self._bell.wait()
                try:
                    await self._pass()
                except Exception:  # a bug of ours must never end the control plane
                    log.exception("rollouts: a pass failed; the next tick tries again")
                    self._everything = self._sweep = True

    async def _tick(self) -> None:
        sweep_at = trio.current_time() + self.sweep_interval
        while True:
            await trio.sleep(self.reconcile_interval)
            self._everything = True
            if trio.current_time() >= sweep_at:
                self._sweep, sweep_at = True, trio.current_time() + self.sweep_interval
            self._bell.ring()

    async def _pass(self) -> None:
        """One pass: agents to standing rollouts first, then the rollouts rung (or all)."""
        idle: set[str] = set()
        try:
            await self._offer_agents()
            if self._everything:
                self._everything = False
                idle = set(await self.store.open_rollouts()) - self._rung
        except StoreUnavailable as exc:
            self._paused(exc)
            return
        rung, self._rung = sorted(self._rung | idle), set()
        for index, rollout_id in enumerate(rung):
            try:
                record = await self.mover.advance(rollout_id, idle=rollout_id in idle)
                if record is not None and record.resume_at is not None:
                    self._wake(rollout_id, record.resume_at)
            except StoreUnavailable as exc:
                self._rung.update(rung[index:])  # again once the store answers
                self._paused(exc)
                return
            except Conflicted as exc:
                log.warning("%s; trying again", exc)
                self._rung.add(rollout_id)
            except Exception:  # a bug of ours must stop this rollout only, never the engine
                log.exception("rollout %s: step failed", rollout_id)
        if self._outage:
            log.info("rollouts resumed: the store answers again")
            self._outage = False

    async def _offer_agents(self) -> None:
        agents = list(self._arrived.values())
        self._arrived.clear()
        if self._sweep:
            self._sweep = False
            agents = [record.info for record in await self.store.list_agents()]
        if not agents:
            return
        for rollout_id in await self.store.open_rollouts():
            try:
                await self.mover.add_agents(rollout_id, agents)
            except StoreUnavailable:
                raise
            except Exception:
                log.exception("rollout %s: adding agents failed", rollout_id)

    def _wake(self, rollout_id: str, at: float) -> None:
        """Ring the rollout when its pause is over (not at the tick after)."""
        if rollout_id in self._waking or self._nursery is None:
            return
        self._waking.add(rollout_id)

        async def wake() -> None:
            try:
                await trio.sleep(max(0.0, at - self.mover.clock()))
            finally:
                self._waking.discard(rollout_id)
            self.ring(rollout_id)

        self._nursery.start_soon(wake)

    def _paused(self, exc: StoreUnavailable) -> None:
        if not self._outage:
            log.warning("rollouts paused: %s", exc)
        self._outage = True
        self._everything = True
        self._sweep = True  # registrations taken before the outage are read again
