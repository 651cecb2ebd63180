"""Executing delivered events: de-duplicated, at most ``concurrency`` at once, and events that
touch the same object in the order they were delivered.

What an event does is the runner's business (:mod:`.kube_runner` for Kubernetes); the worker
owns ordering, limits and the bookkeeping of what it has done.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from typing import Protocol

import trio
import yaml

from transporter.agent.journal import Ran
from transporter.agent.metrics import AgentMetrics
from transporter.logs import about
from transporter.protocol import yaml_reader
from transporter.protocol.messages import Status
from transporter.protocol.model import Event, EventState, Phase, ResourceResult
from transporter.protocol.report_bounds import bounded_report

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 4
REMEMBER = 10_000
"""Finished events remembered for de-duplication (their final report is sent again)."""
MAX_WAITING = 1024
"""Delivered events waiting for a slot; past this the connection stops reading (backpressure)."""

INLINE_KEYS_BYTES = 64 * 1024
"""Events with less YAML than this are read for their ordering keys on the event loop."""

ObjectKey = tuple[str, str, str]
"""``(group, kind, name)``: events naming the same object wait their turn. Without the version
or the namespace (``default`` may be written or left out), so that two spellings of one object
are never applied at once; objects that merely share a name are ordered too, harmlessly."""


class Sink(Protocol):
    """Where the worker's messages go: the session, which sends and resends them."""

    def received(self, event_id: str) -> None: ...

    def report(self, status: Status) -> None: ...

    def unacknowledged(self, status: Status) -> bool:
        """Whether the control plane has not (yet) said it stored ``status``."""
        ...


class Ledger(Protocol):
    """What this agent ran, kept where a restart does not lose it (:mod:`.journal`)."""

    def get(self, event_id: str) -> Ran | None: ...

    async def record(self, event: Event, final: Status) -> None: ...


class Reporter:
    """Numbered status reports of one event. With ``hold_final``, the last report (a terminal
    state) is kept in :attr:`held` instead of being sent: the worker sends it once it is
    written down."""

    def __init__(self, event_id: str, sink: Sink, *, hold_final: bool = False) -> None:
        self.event_id = event_id
        self.sink = sink
        self.seq = 0
        self.last: Status | None = None
        self.hold_final = hold_final
        self.held: Status | None = None

    def __call__(
        self,
        state: EventState,
        phase: Phase | None,
        message: str = "",
        resources: tuple[ResourceResult, ...] | None = None,
    ) -> None:
        self.seq += 1
        message, resources = bounded_report(message, resources)
        self.last = Status(
            event_id=self.event_id,
            seq=self.seq,
            at=time.time(),
            state=state,
            phase=phase,
            message=message,
            resources=resources,
        )
        if self.hold_final and state.terminal:
            self.held = self.last
            return
        self.sink.report(self.last)


class Runner(Protocol):
    """Carries out one event, reporting each phase through ``report``; never raises."""

    async def __call__(self, event: Event, report: Reporter) -> None: ...


def object_keys(event: Event) -> set[ObjectKey]:
    """The objects an event names, for ordering; unparsable manifests name none.

    Reads the YAML as nodes (composed, not constructed, with the bounds of
    :mod:`transporter.protocol.yaml_reader`), looking only at the few fields it needs: aliases
    are never expanded here.
    """
    keys: set[ObjectKey] = set()
    for text in event.payload.manifests:
        try:
            documents = yaml_reader.compose_documents(text, yaml_reader.Budget())
        except yaml.YAMLError:
            continue
        for node in _objects(documents):
            meta = _field(node, "metadata")
            kind, name = _scalar(_field(node, "kind")), _scalar(_field(meta, "name"))
            if kind and name:
                group = _scalar(_field(node, "apiVersion")).rpartition("/")[0]
                keys.add((group, kind, name))
    return keys


def _field(node: yaml.Node | None, name: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == name:
                return value  # type: ignore[no-any-return]
    return None


def _scalar(node: yaml.Node | None) -> str:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else ""


def _objects(documents: Iterable[yaml.Node | None]) -> Iterable[yaml.MappingNode]:
    for doc in documents:
        if not isinstance(doc, yaml.MappingNode):
            continue
        items = _field(doc, "items")
        if _scalar(_field(doc, "kind")).endswith("List") and isinstance(items, yaml.SequenceNode):
            yield from (item for item in items.value if isinstance(item, yaml.MappingNode))
        else:
            yield doc


class Worker:
    def __init__(
        self,
        runner: Runner,
        sink: Sink,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        ledger: Ledger | None = None,
        metrics: AgentMetrics | None = None,
    ) -> None:
        """``ledger``: where what ran is written before its final report goes out, and looked
        up when an event comes that is not remembered here (after a restart)."""
        self.runner = runner
        self.sink = sink
        self.ledger = ledger
        self.metrics = metrics or AgentMetrics()
        self.slots = trio.CapacityLimiter(concurrency)
        self.running: set[str] = set()
        self.finished: OrderedDict[str, Status] = OrderedDict()
        self._queues: dict[ObjectKey, deque[str]] = {}
        self._turn_changed = trio.Event()
        self._room = trio.Semaphore(MAX_WAITING)
        self._parsing = trio.CapacityLimiter(1)
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the event tasks; runs until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    async def offer(self, event: Event) -> None:
        """Take a delivered event: acknowledge it, and run it unless it ran or is running."""
        self.sink.received(event.id)
        final = self.finished.get(event.id)
        if final is not None and self.sink.unacknowledged(final):
            log.debug(
                "event %s delivered again; it finished, sending its result again",
                event.id,
                extra=about(event_id=event.id),
            )
            self.sink.report(final)
            return
        if final is not None:  # its end was stored: only a writer of the store sends it again
            self._replay(event.id, final.state, final.at, final.message, final.seq + 1)
            return
        ran = self.ledger.get(event.id) if self.ledger is not None else None
        if ran is not None:
            self._replay(event.id, EventState(ran.state), ran.finished_at, ran.message, 1)
            return
        if event.id in self.running:
            log.debug(
                "event %s delivered again while running", event.id, extra=about(event_id=event.id)
            )
            return
        assert self._nursery is not None, "Worker.run() must be started first"
        await self._room.acquire()
        self.running.add(event.id)
        if sum(len(text) for text in event.payload.manifests) < INLINE_KEYS_BYTES:
            keys = object_keys(event)
        else:  # reading a large event's YAML must not hold up heartbeats and reports
            keys = await trio.to_thread.run_sync(object_keys, event, limiter=self._parsing)
        for key in keys:  # take a place in each object's line now, in delivery order
            self._queues.setdefault(key, deque()).append(event.id)
        self._nursery.start_soon(self._execute, event, keys)

    def refuse(self, event: Event, message: str) -> None:
        """Take a delivered event that must not run (its signature does not match): it is
        acknowledged and reported ``failed`` with ``message`` at once, and nothing of it is
        looked at. An id that is running or finished here keeps what it has: the refused copy
        is not the event that ran under that id; nor is the refusal remembered as that id's
        result (a genuine event under the id may still come)."""
        self.sink.received(event.id)
        final = self.finished.get(event.id)
        if final is not None:
            self.sink.report(final)
            return
        if event.id in self.running:
            return
        Reporter(event.id, self.sink)(EventState.FAILED, Phase.FAILED, message, ())

    def _replay(self, event_id: str, state: EventState, at: float, message: str, seq: int) -> None:
        """Answer a delivery of an event that ran here to the end: it is not run again."""
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))
        log.warning(
            "event %s delivered again after it ran here (%s at %s): not run again, reported"
            " as a replay",
            event_id,
            state.value,
            when,
            extra=about(event_id=event_id),
        )
        phase = Phase.COMPLETED if state is EventState.COMPLETED else Phase.FAILED
        replay = Status(
            event_id=event_id,
            seq=seq,
            at=time.time(),
            state=state,
            phase=phase,
            message=f"not run again: it ran on this agent, {state.value} at {when}: {message}",
            replay=True,
        )
        self._remember(event_id, replay)
        self.sink.report(replay)

    def _remember(self, event_id: str, final: Status) -> None:
        self.finished[event_id] = final
        while len(self.finished) > REMEMBER:
            self.finished.popitem(last=False)

    async def _execute(self, event: Event, keys: set[ObjectKey]) -> None:
        reporter = Reporter(event.id, self.sink, hold_final=self.ledger is not None)
        try:
            while not all(self._queues[key][0] == event.id for key in keys):
                await self._turn_changed.wait()
            async with self.slots:
                await self.runner(event, reporter)
                if reporter.held is not None:
                    await self._write_down(event, reporter.held)
        finally:
            for key in keys:
                line = self._queues[key]
                line.remove(event.id)
                if not line:
                    del self._queues[key]
            self._turn_changed.set()
            self._turn_changed = trio.Event()
            self.running.discard(event.id)
            self._room.release()
            if reporter.last is not None and reporter.last.state.terminal:
                self._remember(event.id, reporter.last)
                last = reporter.last
                self.metrics.event_ended(last.state, event.payload.action, last.resources or ())

    async def _write_down(self, event: Event, final: Status) -> None:
        """Write in the ledger that ``event`` ran, then send its final report; a ledger that
        cannot be written loses no report (the event may then run again if sent again)."""
        assert self.ledger is not None
        try:
            await self.ledger.record(event, final)
        except Exception as exc:
            log.error(
                "event %s: could not write that it ran: %s",
                event.id,
                exc,
                extra=about(event_id=event.id),
            )
        self.sink.report(final)
