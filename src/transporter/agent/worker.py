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

INLINE_KEYS_BYTES = 64 * 1024
"""Events with less YAML than this are read for their ordering keys on the event loop."""

ObjectKey = tuple[str, str, str, str]
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's parser when PyYAML has it (several times faster), else the Python one."""


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
    """The objects an event names, for ordering; unparsable manifests name none.

    Reads the YAML as nodes (composed, not constructed), looking only at the few fields it
    needs: aliases are never expanded here, so an alias bomb costs nothing before the
    validating phase refuses it.
    """
    keys: set[ObjectKey] = set()
    for text in event.payload.manifests:
        try:
            documents = list(yaml.compose_all(text, Loader=_LOADER))
        except yaml.YAMLError:
            continue
        for node in _objects(documents):
            meta = _field(node, "metadata")
            kind, name = _scalar(_field(node, "kind")), _scalar(_field(meta, "name"))
            if kind and name:
                api_version = _scalar(_field(node, "apiVersion"))
                keys.add((api_version, kind, _scalar(_field(meta, "namespace")), name))
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

    def _remember(self, event_id: str, final: Status) -> None:
        self.finished[event_id] = final
        while len(self.finished) > REMEMBER:
            self.finished.popitem(last=False)

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
                self._remember(event.id, reporter.last)
