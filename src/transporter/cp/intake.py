"""Accepting events: signed, stored durably with their audit entry, then the agent's connection
(if it is here) told that its outbox has something new."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import trio

from transporter.cp.live import Connection, LiveAgents
from transporter.cp.metrics import CpMetrics
from transporter.cp.progress import sent
from transporter.cp.signing_key import EventSigner
from transporter.cp.together import Together
from transporter.protocol.model import AgentInfo, AuditEntry, Event, EventRecord, EventState
from transporter.protocol.status import StatusUpdate
from transporter.store.base import (
    Sending,
    Store,
    StoreError,
    Submitted,
)

log = logging.getLogger(__name__)

TOGETHER = 256
"""Single events stored in one write at most."""
EXPRESS_BYTES = 64 * 1024
"""Events with fewer bytes of manifests than this may be sent at once, in their request's task
(:meth:`Intake.accept`); a larger one goes the usual way: its request is not held for its
transfer, nor its connection closed when that outlasts the send's bound."""


class Intake:
    """Where the API hands accepted events (one per control plane)."""

    def __init__(
        self,
        store: Store,
        signer: EventSigner,
        live: LiveAgents,
        *,
        metrics: CpMetrics | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics or CpMetrics()
        self.signer = signer
        """Signs every event before it is stored: agents refuse events that do not match."""
        self.live = live
        self._known_agents: set[str] = set()
        """Agents known to have registered (they are never forgotten, so a hit is final)."""
        self.on_registered: Callable[[AgentInfo], None] | None = None
        """Told of every agent that registers here (the rollout engine: standing rollouts)."""
        self._together = Together[tuple[Event, AuditEntry, Sending | None, str | None], Submitted](
            self._submit_many, most=TOGETHER
        )
        """Single events accepted at the same time, stored in one write."""

    async def accept(self, event: Event, token: str | None = None) -> tuple[EventRecord, bool]:
        """Sign and store ``event``, durably, in one write with the others accepted at the
        same time (:mod:`.together`); :class:`EventConflict` for an id taken by another,
        :class:`TokenRevoked` when ``token`` (the id of the API token that submits it) is
        revoked when the write checks it.

        When its agent's connection is here and idle, a small event is stored sent and sent at
        once (:meth:`.live.Connection.claim`): no read of the outbox, no second write."""
        (event,) = await self.signer.sign_many([event])
        connection = self.live.get(event.target_agent)
        claimed = None
        small = sum(len(text) for text in event.payload.manifests) < EXPRESS_BYTES
        # a rollout's child goes the usual way: its rollout hears of each send
        if connection is not None and small and not event.rollout_id:
            claimed = connection.claim()
        sending = None if claimed is None else sent(event, time.time(), after=claimed)
        try:
            result = await self._together.write((event, accepted_audit(event), sending, token))
        except BaseException as exc:
            if claimed is not None and connection is not None:
                await _hand_back(connection, claimed, [])
            if isinstance(exc, trio.Cancelled):  # its write may go on: it may yet be stored
                with trio.CancelScope(shield=True):  # the store bounds the write
                    await self._together.settled()
                self.live.ring(event.target_agent)
            raise
        stored: list[EventRecord] = []
        if not isinstance(result, StoreError) and result[0].state is EventState.ASSIGNED:
            stored = [result[0]] if result[1] else []
        if claimed is not None and connection is not None:
            sent_now = await _hand_back(connection, claimed, stored)
            if stored and not sent_now:
                await self._went_away(event)
            stored = sent_now
        if isinstance(result, StoreError):
            raise result
        record, created = result
        if created:
            self.metrics.accepted_events("single")
            if not stored:
                self.live.ring(event.target_agent)
        return record, created

    async def _went_away(self, event: Event) -> None:
        """``event`` was stored sent, and its connection ended before it was sent: back to
        ``queued``, as the events in flight on a connection that ends are (:func:`.roster.left`),
        so that it can still be cancelled while its agent is away. Its agent's next connection
        reads it either way."""
        went_away = StatusUpdate(at=time.time(), state=EventState.QUEUED, message="agent went away")
        try:
            await self.store.update_event(event.id, went_away)
        except StoreError as exc:
            log.warning("event %s: could not put it back in the queue: %s", event.id, exc)

    async def _submit_many(
        self, items: Sequence[tuple[Event, AuditEntry, Sending | None, str | None]]
    ) -> list[Submitted]:
        return await self.store.submit_many(
            [(event, audit) for event, audit, _, _ in items],
            sending=[sending for _, _, sending, _ in items],
            tokens=[token for _, _, _, token in items],
        )

    async def accept_many(self, events: list[Event], token: str | None = None) -> list[Submitted]:
        """Like :meth:`accept` for each event, in one durable write."""
        events = await self.signer.sign_many(events)
        audits = [accepted_audit(event) for event in events]
        results = await self.store.submit_many(
            list(zip(events, audits, strict=True)), tokens=[token] * len(events)
        )
        created = 0
        for event, result in zip(events, results, strict=True):
            if not isinstance(result, StoreError) and result[1]:
                created += 1
                self.live.ring(event.target_agent)
        self.metrics.accepted_events("batch", created)
        return results

    def agent_registered(self, info: AgentInfo) -> None:
        self._known_agents.add(info.id)
        if self.on_registered is not None:
            self.on_registered(info)

    async def agent_known(self, agent_id: str) -> bool:
        """Whether ``agent_id`` ever registered (with this store)."""
        if agent_id not in self._known_agents:
            if await self.store.get_agent(agent_id) is None:
                return False
            self._known_agents.add(agent_id)
        return True


async def _hand_back(
    connection: Connection, claimed: int, stored: list[EventRecord]
) -> list[EventRecord]:
    """Give ``connection`` back its delivery, taken for an event (:meth:`Connection.claim`),
    with the events ``stored`` sent; those it sent (none if it ended meanwhile: the agent's
    next connection reads them)."""
    courier = connection.courier
    if courier is None or not await courier.express(connection, claimed, stored):
        return []
    return stored


def accepted_audit(event: Event) -> AuditEntry:
    return AuditEntry(
        at=event.created_at,
        action="event.accepted",
        actor=event.created_by,
        agent_id=event.target_agent,
        event_id=event.id,
        detail=f"{event.payload.action.value} {len(event.payload.manifests)} manifest(s)",
    )
