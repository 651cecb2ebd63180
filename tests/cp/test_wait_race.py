"""``GET /events/{id}?wait=`` when the wake-ups come out of the order of the writes.

Writers notify after their commits, but not in the order of them: the tasks that one group
commit wakes (an agent's reports, the expiry, a cancel, a lost connection's requeue) run in
whichever order trio picks, and another replica's hint may come before this replica's own
notice of an earlier write. Here the route runs on a real store (a SQLite file, a real
redis-server) with the real progress writer and :class:`~transporter.cp.watch.EventWatch`; its
first read is held, right after it read, by a wrapper that only pauses (:class:`HeldRead`),
while the writers commit and notify in the order each test forces.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import attrs
import pytest
import trio
import trio.testing

from tests.bed import pki as test_pki
from tests.bed import records as r
from tests.bed.redis import RedisServer
from tests.bed.store_backends import Backend
from transporter.config.store_spec import StoreSpec
from transporter.cp.api import create_app, events
from transporter.cp.api.services import Services
from transporter.cp.intake import Intake
from transporter.cp.live import LiveAgents
from transporter.cp.progress import Progress
from transporter.cp.replicas import ReplicaHints
from transporter.cp.sessions import Sessions
from transporter.cp.watch import EventWatch
from transporter.protocol.model import EventRecord, EventState, Phase
from transporter.protocol.status import StatusUpdate, accepted, advance
from transporter.store import Store

EVENT, AGENT = "ev-1", "agent-a"
FINAL_ONLY = 1_000_000
"""``since`` beyond any timeline: the answer waits until the event has ended."""
WAIT = 60
"""The request's ``wait``: longer than :data:`ANSWER_TIMEOUT`, and than the replicas' look."""
ANSWER_TIMEOUT = 10.0
"""A bound on what must come at once (the test fails rather than hangs)."""
ASSIGNED = r.update(EventState.ASSIGNED, r.T0 + 1, message="sent to agent")
RECEIVED = r.update(EventState.IN_PROGRESS, r.T0 + 2, Phase.RECEIVED, "received by agent")
VALIDATING = r.update(EventState.IN_PROGRESS, r.T0 + 3, Phase.VALIDATING, "validating")
EXPIRED = r.update(EventState.EXPIRED, r.T0 + 4, message="TTL passed before the event finished")


class HeldRead:
    """The real store, whose first read of :data:`EVENT` is held once it has read, until
    :attr:`resume` is set (:attr:`held` is set then, :attr:`read` is what it read)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.held = trio.Event()
        self.resume = trio.Event()
        self.read: EventRecord | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def get_event(self, event_id: str) -> EventRecord | None:
        record = await self._store.get_event(event_id)
        if event_id == EVENT and not self.held.is_set():
            self.read = record
            self.held.set()
            await self.resume.wait()
        return record


@attrs.frozen
class Replica:
    """A control plane's parts that wait and write, on a store object of its own; its API
    reads through :class:`HeldRead`."""

    store: Store
    live: LiveAgents
    watch: EventWatch
    progress: Progress
    reads: HeldRead
    shared: bool

    async def waiting(self, nursery: trio.Nursery) -> trio.MemoryReceiveChannel[Any]:
        """``GET /events/EVENT?wait`` for its end, started in ``nursery``; returns once the
        request has read the event (and is held), with where its answer will come."""
        intake = Intake(self.store, test_pki.shared().signer, self.live)
        found = Services(
            cast(Store, self.reads), intake, self.live, self.watch, shared_store=self.shared
        )
        client = create_app(found, auth=False).test_client()
        send, receive = trio.open_memory_channel[Any](1)

        async def ask() -> None:
            answer = await client.get(f"/events/{EVENT}?wait={WAIT}&since={FINAL_ONLY}")
            assert answer.status_code == 200
            await send.send(await answer.get_json())

        nursery.start_soon(ask)
        with trio.fail_after(ANSWER_TIMEOUT):
            await self.reads.held.wait()
        return receive


@asynccontextmanager
async def replica(backend: Backend) -> AsyncIterator[Replica]:
    """A replica on ``backend``, its progress writer running."""
    async with backend.open() as store, trio.open_nursery() as nursery:
        live, watch = LiveAgents(), EventWatch()
        progress = Progress(store, live, watch)
        nursery.start_soon(progress.run)
        yield Replica(store, live, watch, progress, HeldRead(store), backend.kind == "redis")
        nursery.cancel_scope.cancel()


async def sent(one: Replica) -> None:
    """:data:`EVENT` stored and sent to its agent."""
    event = r.event(EVENT, AGENT)
    await one.store.submit(event, r.accepted_audit(event))
    record = await one.progress.update(EVENT, AGENT, ASSIGNED)
    assert record is not None and record.state is EventState.ASSIGNED


async def answered(answers: trio.MemoryReceiveChannel[Any]) -> Any:
    with trio.fail_after(ANSWER_TIMEOUT):
        return await answers.receive()


async def test_an_older_record_notified_after_a_newer_one_does_not_hide_it(
    backend: Backend,
) -> None:
    """The agent's report (received) and the expiry (expired) of one event are written in one
    group commit; the expiry's task happens to run first, and notifies before the agent's
    acknowledger does. The request, which read the event before the commit, answers
    ``expired`` at once. (It was woken with the older record, which had taken the newer one's
    place, and waited again: for the whole ``wait`` on SQLite, for the replicas' look on
    Redis.)"""
    async with replica(backend) as one, trio.open_nursery() as nursery:
        await sent(one)
        answers = await one.waiting(nursery)
        assert one.reads.read is not None and one.reads.read.state is EventState.ASSIGNED
        report = await one.progress.enqueue(EVENT, AGENT, RECEIVED)
        expiry = await one.progress.enqueue(EVENT, AGENT, EXPIRED)
        ended = await one.progress.updated(expiry, AGENT)
        received = await one.progress.updated(report, AGENT)
        assert ended is not None and ended.state is EventState.EXPIRED
        assert received is not None and received.state is EventState.IN_PROGRESS
        one.reads.resume.set()
        assert (await answered(answers))["state"] == "expired"


class Deadline:
    """The route's clock for its ``wait`` (``time.monotonic``), moved by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now


async def test_a_notice_older_than_the_record_read_does_not_take_its_place(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent's reports (received, then validating) are stored, and the second one told,
    before the request comes; it reads ``validating`` and waits. The first report's notice
    comes late, once the ``wait`` is over: the answer is still ``validating``. (It was the
    notice's older record, which the request took in place of the one it had read.)"""
    deadline = Deadline()
    monkeypatch.setattr(events, "time", deadline)
    async with replica(backend) as one, trio.open_nursery() as nursery:
        await sent(one)
        report = await one.progress.enqueue(EVENT, AGENT, RECEIVED)
        assert await report.wait() is not None  # written; the acknowledger's notice comes later
        validating = await one.progress.update(EVENT, AGENT, VALIDATING)
        assert validating is not None and validating.phase is Phase.VALIDATING
        answers = await one.waiting(nursery)
        assert one.reads.read == validating
        one.reads.resume.set()
        await trio.testing.wait_all_tasks_blocked()  # waiting for a change
        deadline.now = WAIT + 1
        await one.progress.updated(report, AGENT)
        answer = await answered(answers)
        assert (answer["phase"], len(answer["timeline"])) == ("validating", 4)


class HeardEnd(ReplicaHints):
    """The replica's real hints, and :attr:`ended` set once one said an event ended."""

    def __init__(self, one: Replica) -> None:
        super().__init__(one.live, one.watch, Sessions(one.store, one.live))
        self.ended = trio.Event()

    def progressed(self, event_id: str, agent_id: str, *, terminal: bool) -> None:
        super().progressed(event_id, agent_id, terminal=terminal)
        if terminal:
            self.ended.set()


@pytest.mark.redis
async def test_a_local_record_notified_after_a_replicas_hint_does_not_hide_it(
    redis_server: RedisServer,
) -> None:
    """Replica one stores the agent's report (received); replica two then expires the event,
    and its hint reaches replica one before replica one's own notice of the report does. The
    request on replica one answers ``expired`` at once. (It was woken with the notice's
    record, which had taken the place of the hint's "read again", and waited again for the
    replicas' look.)"""
    backend = Backend("redis", StoreSpec.parse(redis_server.url), redis_server)
    async with replica(backend) as one, replica(backend) as two, trio.open_nursery() as nursery:
        hints = HeardEnd(one)
        await nursery.start(hints.run, one.store)
        await sent(one)
        answers = await one.waiting(nursery)
        assert one.reads.read is not None and one.reads.read.state is EventState.ASSIGNED
        report = await one.progress.enqueue(EVENT, AGENT, RECEIVED)
        stored = await report.wait()  # written; the acknowledger's notice comes later
        assert stored is not None and stored.state is EventState.IN_PROGRESS
        ended = await two.progress.update(EVENT, AGENT, EXPIRED)
        assert ended is not None and ended.state is EventState.EXPIRED
        with trio.fail_after(ANSWER_TIMEOUT):
            await hints.ended.wait()
        await one.progress.updated(report, AGENT)
        one.reads.resume.set()
        assert (await answered(answers))["state"] == "expired"
        nursery.cancel_scope.cancel()


def _record(*updates: StatusUpdate) -> EventRecord:
    record = accepted(EventRecord(event=r.event(EVENT, AGENT), seq=1))
    for update in updates:
        advanced = advance(record, update)
        assert advanced is not None
        record = advanced
    return record


async def test_a_subscription_wakes_with_the_newest_record_or_with_none() -> None:
    """Whatever order the notices come in: the newest record, when one of those given follows
    from all the others; else ``None`` (read again)."""
    older, newer = _record(ASSIGNED), _record(ASSIGNED, RECEIVED)
    results = attrs.evolve(ASSIGNED, resources=r.RESULTS[:1])
    other = _record(ASSIGNED, results)  # as long a timeline as ``older``, and not the same
    orders: list[tuple[tuple[EventRecord | None, ...], EventRecord | None]] = [
        ((newer, older), newer),
        ((older, newer), newer),
        ((older, older), older),
        ((None, newer), None),
        ((newer, None), None),
        ((older, other), None),
        ((older, other, newer), None),
    ]
    watch = EventWatch()
    with watch.watching(EVENT) as subscription:
        for given, woken in orders:
            for record in given:
                watch.changed(EVENT, record)
            with trio.fail_after(ANSWER_TIMEOUT):
                assert await subscription.next() == woken, given
