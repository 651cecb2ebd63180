"""The agent's worker: de-duplication, the concurrency limit, and per-object order.

The runner here is a recording one of our own interface, so that order and overlap can be seen;
the real runner (Kubernetes) is exercised end to end in tests/e2e.
"""

from __future__ import annotations

import trio
import trio.testing

from tests.bed.sink import RecordingSink
from transporter.agent.journal import Ran
from transporter.agent.reports import Reports
from transporter.agent.worker import Reporter, Worker, object_keys
from transporter.protocol.messages import Status
from transporter.protocol.model import Event, EventState, K8sPayload, Phase


def configmap(name: str) -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: ns}}\n"


def event(event_id: str, *manifests: str) -> Event:
    return Event(
        id=event_id, target_agent="a", payload=K8sPayload(manifests), ttl=60, created_at=0.0
    )


class Ledger:
    """The worker's ledger as a dict (the journal in a real cluster: tests/e2e/test_replay.py),
    saying what it was told and when."""

    def __init__(self, sink: RecordingSink) -> None:
        self.sink = sink
        self.entries: dict[str, Ran] = {}
        self.reports_when_recorded: list[int] = []

    def get(self, event_id: str) -> Ran | None:
        return self.entries.get(event_id)

    async def record(self, event: Event, final: Status) -> None:
        self.reports_when_recorded.append(len(self.sink.reports))
        self.entries[event.id] = Ran(final.state.value, final.at, final.at + 60, final.message)


class GatedRunner:
    """Each event runs until the test opens its gate; records starts, ends and overlap."""

    def __init__(self) -> None:
        self.gates: dict[str, trio.Event] = {}
        self.started: list[str] = []
        self.active = 0
        self.most_active = 0

    def gate(self, event_id: str) -> trio.Event:
        return self.gates.setdefault(event_id, trio.Event())

    async def __call__(self, event: Event, report: Reporter) -> None:
        self.started.append(event.id)
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        report(EventState.IN_PROGRESS, Phase.APPLYING)
        await self.gate(event.id).wait()
        self.active -= 1
        report(EventState.COMPLETED, Phase.COMPLETED, "done", ())


async def test_events_on_the_same_object_run_in_delivery_order() -> None:
    runner, sink = GatedRunner(), RecordingSink()
    worker = Worker(runner, sink, concurrency=4)
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        await worker.offer(event("first", configmap("shared")))
        await worker.offer(event("other", configmap("elsewhere")))
        await worker.offer(event("second", configmap("shared")))
        await trio.testing.wait_all_tasks_blocked()
        assert runner.started == ["first", "other"]  # second waits for first: same object
        runner.gate("first").set()
        await trio.testing.wait_all_tasks_blocked()
        assert runner.started == ["first", "other", "second"]
        runner.gate("other").set()
        runner.gate("second").set()
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert sink.acks == ["first", "other", "second"]


async def test_at_most_concurrency_events_run_at_once() -> None:
    runner, sink = GatedRunner(), RecordingSink()
    worker = Worker(runner, sink, concurrency=2)
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        for n in range(6):
            await worker.offer(event(f"e{n}", configmap(f"c{n}")))
        await trio.testing.wait_all_tasks_blocked()
        assert len(runner.started) == 2
        for n in range(6):
            runner.gate(f"e{n}").set()
        await trio.testing.wait_all_tasks_blocked()
        assert len(runner.started) == 6
        nursery.cancel_scope.cancel()
    assert runner.most_active == 2


async def test_a_repeated_delivery_is_not_run_again() -> None:
    runner, sink = GatedRunner(), RecordingSink()
    worker = Worker(runner, sink)
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        await worker.offer(event("once", configmap("x")))
        await worker.offer(event("once", configmap("x")))  # while running
        await trio.testing.wait_all_tasks_blocked()
        runner.gate("once").set()
        await trio.testing.wait_all_tasks_blocked()
        final = sink.reports[-1]
        assert final.state is EventState.COMPLETED
        await worker.offer(event("once", configmap("x")))  # after it finished
        await trio.testing.wait_all_tasks_blocked()
        assert sink.reports[-1] == final  # its end not stored yet: its result, sent again
        sink.stored.add((final.event_id, final.seq))
        await worker.offer(event("once", configmap("x")))  # its end was stored: a replay
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert runner.started == ["once"]
    assert sink.acks == ["once"] * 4
    replay = sink.reports[-1]
    assert replay.replay and replay.seq == final.seq + 1
    assert (replay.state, replay.message[:14]) == (EventState.COMPLETED, "not run again:")


async def test_what_ran_is_written_down_before_its_end_is_reported_and_never_run_again() -> None:
    runner, sink = GatedRunner(), RecordingSink()
    ledger = Ledger(sink)
    worker = Worker(runner, sink, ledger=ledger)
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        await worker.offer(event("once", configmap("x")))
        await trio.testing.wait_all_tasks_blocked()
        runner.gate("once").set()
        await trio.testing.wait_all_tasks_blocked()
        final = sink.reports[-1]
        assert final.state is EventState.COMPLETED
        assert ledger.reports_when_recorded == [len(sink.reports) - 1]  # written, then sent
        restarted, later = Worker(runner, RecordingSink(), ledger=ledger), RecordingSink()
        restarted.sink = later
        await nursery.start(restarted.run)
        await restarted.offer(event("once", configmap("x")))
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert runner.started == ["once"]
    [replay] = later.reports
    assert replay.replay and replay.state is EventState.COMPLETED


def test_the_report_buffer_is_bounded_and_keeps_the_newest() -> None:
    reports = Reports(limit=3)
    for seq in range(1, 4):
        reports.add(Status("a", seq, 0.0, EventState.IN_PROGRESS))
    reports.add(Status("b", 1, 0.0, EventState.COMPLETED))
    kept = [(s.event_id, s.seq) for s in reports.pending()]
    assert kept == [("a", 2), ("a", 3), ("b", 1)]
    assert reports.dropped == 1
    reports.ack("a", 2)
    assert len(reports) == 2


def test_object_keys_come_from_nodes_and_never_expand_aliases() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + n)}: &{chr(98 + n)} [*{chr(97 + n)}, *{chr(97 + n)}, *{chr(97 + n)},"
        f" *{chr(97 + n)}, *{chr(97 + n)}, *{chr(97 + n)}, *{chr(97 + n)}, *{chr(97 + n)}]\n"
        for n in range(20)
    )
    listed = (
        "apiVersion: v1\nkind: List\nitems:\n"
        "- {apiVersion: v1, kind: ConfigMap, metadata: {name: one, namespace: ns}}\n"
        "- {apiVersion: v1, kind: Secret, metadata: {name: two}}\n"
    )
    keys = object_keys(event("e", configmap("plain"), listed, bomb, "not: [valid"))
    assert keys == {
        ("", "ConfigMap", "plain"),
        ("", "ConfigMap", "one"),
        ("", "Secret", "two"),
    }  # and the bomb's document names nothing, and cost nothing


def test_reports_are_sent_once_per_connection_and_again_after_a_reconnect() -> None:
    reports = Reports(limit=100)
    reports.add(Status("a", 1, 0.0, EventState.IN_PROGRESS))
    reports.add(Status("a", 2, 0.0, EventState.COMPLETED))
    assert [(s.event_id, s.seq) for s in reports.take_unsent()] == [("a", 1), ("a", 2)]
    assert reports.take_unsent() == []
    reports.add(Status("b", 1, 0.0, EventState.COMPLETED))
    reports.ack("a", 1)
    assert [(s.event_id, s.seq) for s in reports.take_unsent()] == [("b", 1)]
    reports.resend_all()  # reconnected: everything not acknowledged, in order
    assert [(s.event_id, s.seq) for s in reports.take_unsent()] == [("a", 2), ("b", 1)]


async def test_a_large_events_order_is_read_off_the_event_loop_and_still_kept() -> None:
    runner, sink = GatedRunner(), RecordingSink()
    worker = Worker(runner, sink, concurrency=4)
    big = configmap("shared") + "data:\n" + "".join(f"  k{n}: v{n}\n" for n in range(8000))
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        await worker.offer(event("large", big))
        await worker.offer(event("after", configmap("shared")))
        await trio.testing.wait_all_tasks_blocked()
        assert runner.started == ["large"]  # same object: "after" waits its turn
        runner.gate("large").set()
        runner.gate("after").set()
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert runner.started == ["large", "after"]


async def test_a_refused_event_is_acknowledged_reported_failed_and_never_run() -> None:
    runner, sink = GatedRunner(), RecordingSink()
    worker = Worker(runner, sink, concurrency=4)
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        worker.refuse(event("forged", configmap("x")), "signature does not match: refused")
        assert sink.acks == ["forged"]
        (final,) = sink.reports
        assert (final.state, final.phase, final.message, final.resources) == (
            EventState.FAILED,
            Phase.FAILED,
            "signature does not match: refused",
            (),
        )
        # Delivered again (the report was lost): refused again, never run.
        worker.refuse(event("forged", configmap("x")), "signature does not match: refused")
        assert (sink.reports[-1].state, sink.reports[-1].message) == (final.state, final.message)
        assert runner.started == []
        # The refusal is not that id's result: a genuine event under the id still runs.
        await worker.offer(event("forged", configmap("x")))
        await trio.testing.wait_all_tasks_blocked()
        assert runner.started == ["forged"]
        runner.gate("forged").set()
        await trio.testing.wait_all_tasks_blocked()
        # A refused copy of an event that is running leaves that event alone.
        await worker.offer(event("real", configmap("y")))
        await trio.testing.wait_all_tasks_blocked()
        worker.refuse(event("real", configmap("evil")), "signature does not match: refused")
        runner.gate("real").set()
        await trio.testing.wait_all_tasks_blocked()
        assert runner.started == ["forged", "real"]
        assert sink.reports[-1].state is EventState.COMPLETED
        nursery.cancel_scope.cancel()
