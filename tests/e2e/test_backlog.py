"""A large backlog for an offline agent: kept in the store, not in the control plane's memory,
and delivered in order when the agent returns, never more at once than the window, and run no
more at once than the agent's concurrency limit.

The agent's runner here records instead of applying: what is under test is delivery (the real
store, the real channel, the real session and worker), and 10,000 applies on the test bed's API
server would take minutes; applying is tested against real clusters everywhere else.
"""

from __future__ import annotations

from pathlib import Path

import trio

from tests.bed.harness import FAST_BACKOFF, ControlPlane
from transporter.agent.session import Session, agent_info
from transporter.agent.worker import Reporter
from transporter.config.store_spec import StoreSpec
from transporter.cp.live import WINDOW
from transporter.protocol.model import Event, EventState, Phase
from transporter.store import open_store

EVENTS = 10_000
BATCH = 500
CONCURRENCY = 4
WORK = 0.005
"""Seconds each event "takes" on the agent, so that events overlap and the limit is reached."""


class Recorder:
    """A runner that records how many events run at once, and completes each."""

    def __init__(self) -> None:
        self.running = 0
        self.peak = 0
        self.finished = 0
        self.last = ""
        self.all_finished = trio.Event()

    async def __call__(self, event: Event, report: Reporter) -> None:
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            report(EventState.IN_PROGRESS, Phase.APPLYING)
            await trio.sleep(WORK)
            report(EventState.COMPLETED, Phase.COMPLETED, "recorded", ())
        finally:
            self.running -= 1
            self.finished += 1
            self.last = event.id
            if self.finished == EVENTS:
                self.all_finished.set()


async def test_ten_thousand_queued_events_are_delivered_in_order_when_the_agent_returns(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    cp = ControlPlane(nursery, tmp_path / "cp")
    await cp.start()
    submitted: list[str] = []
    for start in range(0, EVENTS, BATCH):
        events = [
            {
                "target_agent": "returning",
                "payload": {
                    "manifests": [
                        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: backlog-{n}\n"
                    ]
                },
            }
            for n in range(start, start + BATCH)
        ]
        answer = await cp.client.submit_batch(events)
        submitted += [result["event_id"] for result in answer["results"]]
    assert len(set(submitted)) == EVENTS

    recorder = Recorder()
    session = Session(
        agent_info("returning", "backlog", {}),
        cp.agent_url,
        recorder,
        concurrency=CONCURRENCY,
        backoff=FAST_BACKOFF,
        **cp.credentials("returning"),
    )
    with trio.fail_after(240):
        async with trio.open_nursery() as agent:
            agent.start_soon(session.run)
            await recorder.all_finished.wait()
            # The last report sent is stored last (one connection's reports are written in
            # the order they come): once it is, all are.
            since = 0
            while not (
                record := await cp.client.event(recorder.last, wait=30, since=since)
            ).state.terminal:
                since = len(record.timeline)
            agent.cancel_scope.cancel()
    assert recorder.peak == CONCURRENCY
    assert session.worker.running == set()
    await cp.stop()

    spec = StoreSpec.sqlite_in(tmp_path / "cp")
    async with open_store(spec) as store:
        cursor = None
        states: dict[str, EventState] = {}
        while True:
            page = await store.list_events(agent="returning", limit=1000, cursor=cursor)
            states.update((r.event.id, r.state) for r in page.items)
            if page.cursor is None:
                break
            cursor = page.cursor
        assert states == dict.fromkeys(submitted, EventState.COMPLETED)

        # The order the control plane sent them in (each event's first delivery).
        delivered: list[str] = []
        seen: set[str] = set()
        after = 0
        while batch := await store.audit_after(after, limit=1000):
            for entry in batch:
                if entry.action == "event.delivered" and entry.event_id not in seen:
                    seen.add(entry.event_id)
                    delivered.append(entry.event_id)
            after = batch[-1].seq
    assert delivered == submitted
    assert WINDOW < EVENTS  # so the window was what held the rest back in the store
