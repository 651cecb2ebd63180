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

from transporter.protocol.messages import Status
from transporter.protocol.model import Event, EventState, Phase, ResourceResult

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 4
REMEMBER = 10_000
"""Finished events remembered for de-duplication (their final report is sent again)."""
MAX_WAITING = 1024
"""Delivered events waiting for a slot; past this the connection stops reading (backpressure)."""

ObjectKey = tuple[str, str, str, str]


class Sink(Protocol):
    """Where the worker's messages go: the session, which sends and resends them."""

    def received(self, event_id: str) -> None: ...

    def report(self, status: Status) -> None: ...


class Reporter:
    """Numbered status reports of one event."""

    def __init__(self, event_id: str, sink: Sink) -> None:
        self.event_id = event_id
        self.sink = sink
        self.seq = 0
        self.last: Status | None = None

    def __call__(
        self,
        state: EventState,
        phase: Phase | None,
        message: str = "",
        resources: tuple[ResourceResult, ...] | None = None,
    ) -> None:
        self.seq += 1
        self.last = Status(
            event_id=self.event_id,
            seq=self.seq,
            at=time.time(),
            state=state,
            phase=phase,
            message=message,
            resources=resources,
        )
        self.sink.report(self.last)


class Runner(Protocol):
    """Carries out one event, reporting each phase through ``report``; never raises."""

    async def __call__(self, event: Event, report: Reporter) -> None: ...


def object_keys(event: Event) -> set[ObjectKey]:
    """The objects an event names, for ordering; unparsable manifests name none."""
    keys: set[ObjectKey] = set()
    for text in event.payload.manifests:
        try:
            documents = list(yaml.safe_load_all(text))
        except yaml.YAMLError:
            continue
        for doc in _flatten(documents):
            meta = doc.get("metadata")
            if isinstance(meta, dict):
                keys.add(
                    (
                        str(doc.get("apiVersion", "")),
                        str(doc.get("kind", "")),
                        str(meta.get("namespace", "")),
                        str(meta.get("name", "")),
                    )
                )
    return keys


def _flatten(documents: Iterable[object]) -> Iterable[dict[str, object]]:
    for doc in documents:
        if isinstance(doc, dict):
            items = doc.get("items")
            if str(doc.get("kind", "")).endswith("List") and isinstance(items, list):
                yield from (item for item in items if isinstance(item, dict))
            else:
                yield doc


class Worker:
    def __init__(
        self, runner: Runner, sink: Sink, *, concurrency: int = DEFAULT_CONCURRENCY
    ) -> None:
        self.runner = runner
        self.sink = sink
        self.slots = trio.CapacityLimiter(concurrency)
        self.running: set[str] = set()
        self.finished: OrderedDict[str, Status] = OrderedDict()
        self._queues: dict[ObjectKey, deque[str]] = {}
        self._turn_changed = trio.Event()
        self._room = trio.Semaphore(MAX_WAITING)
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
        if final is not None:
            log.debug("event %s delivered again; it finished, sending its result again", event.id)
            self.sink.report(final)
            return
        if event.id in self.running:
            log.debug("event %s delivered again while running", event.id)
            return
        assert self._nursery is not None, "Worker.run() must be started first"
        await self._room.acquire()
        self.running.add(event.id)
        keys = object_keys(event)
        for key in keys:  # take a place in each object's line now, in delivery order
            self._queues.setdefault(key, deque()).append(event.id)
        self._nursery.start_soon(self._execute, event, keys)

    async def _execute(self, event: Event, keys: set[ObjectKey]) -> None:
        reporter = Reporter(event.id, self.sink)
        try:
            while not all(self._queues[key][0] == event.id for key in keys):
                await self._turn_changed.wait()
            async with self.slots:
                await self.runner(event, reporter)
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
                self.finished[event.id] = reporter.last
                while len(self.finished) > REMEMBER:
                    self.finished.popitem(last=False)
