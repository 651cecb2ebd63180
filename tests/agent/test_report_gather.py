"""How a real agent session sends an event's reports (a recording control plane over real
TCP): the acknowledgement and the first phases, made one after another, go in one message
once :data:`REPORT_GATHER` has passed; a final report goes at once, with whatever waits."""

from __future__ import annotations

import time
from functools import partial

import attrs
import pytest
import trio

from tests.bed import records as r
from tests.bed.harness import FAST_BACKOFF
from transporter.agent import session as agent_session
from transporter.agent.session import Session
from transporter.agent.worker import Reporter
from transporter.cp.framing import Upgrade
from transporter.protocol import codec, frames
from transporter.protocol.messages import Deliver, ReportBatch, Status, Welcome
from transporter.protocol.model import AgentInfo, Event, EventState, Phase

GATHER = 1.0
"""The gather in this test: far longer than anything here takes, so that what it gathers is
not a matter of timing."""


@attrs.define
class Recorder:
    """A control plane that welcomes the agent (protocol 4), delivers ``event``, and notes each
    message that comes after, as what it reports: ``received`` or a phase, per message."""

    event: Event
    messages: list[list[str]] = attrs.field(factory=list)
    came: trio.Event = attrs.field(factory=trio.Event)

    async def serve(self, stream: trio.SocketStream) -> None:
        upgrade = Upgrade(stream, max_message_bytes=1 << 20)
        assert await upgrade.request()
        await upgrade.accept()
        reader = frames.Reader(1 << 20)
        welcomed = False
        while True:
            found = reader.next()
            if found is None:
                reader.feed(await stream.receive_some(4096))
                continue
            opcode, value = found
            if opcode != frames.TEXT:
                continue
            if not welcomed:  # the registration
                for said in (Welcome("agent-a", 30.0, 90.0, protocol=4), Deliver(self.event)):
                    text = codec.encode(said).encode()
                    await stream.send_all(frames.frame(frames.TEXT, text))
                welcomed = True
                continue
            self.messages.append(_reported(codec.decode(str(value))))
            self.came.set()
            self.came = trio.Event()


def _reported(message: object) -> list[str]:
    if isinstance(message, ReportBatch):
        said = ["received" for _ in message.received]
        return said + [str(status.phase) for status in message.statuses]
    assert isinstance(message, Status)
    return [str(message.phase)]


@attrs.define
class Held:
    """A runner that reports its first phases, then waits for ``go`` to finish."""

    go: trio.Event = attrs.field(factory=trio.Event)
    began: trio.Event = attrs.field(factory=trio.Event)

    async def __call__(self, event: Event, report: Reporter) -> None:
        report(EventState.IN_PROGRESS, Phase.VALIDATING)
        report(EventState.IN_PROGRESS, Phase.APPLYING)
        self.began.set()
        await self.go.wait()
        report(EventState.IN_PROGRESS, Phase.VERIFYING)
        report(EventState.COMPLETED, Phase.COMPLETED, "1 updated")


async def test_first_phases_go_together_and_a_final_report_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(agent_session, "REPORT_GATHER", GATHER)
    recorder = Recorder(r.event("ev-1", "agent-a", created_at=time.time()))
    runner = Held()
    async with trio.open_nursery() as nursery:
        serve = partial(trio.serve_tcp, recorder.serve, 0, host="127.0.0.1")
        listeners = await nursery.start(serve)
        port = listeners[0].socket.getsockname()[1]
        session = Session(
            AgentInfo("agent-a"), f"ws://127.0.0.1:{port}/ws", runner, backoff=FAST_BACKOFF
        )
        nursery.start_soon(session.run)
        with trio.fail_after(GATHER * 3):
            await runner.began.wait()
            began = trio.current_time()
            while not recorder.messages:
                await recorder.came.wait()
        assert trio.current_time() - began >= GATHER * 0.5  # they waited for the gather
        assert recorder.messages == [["received", "validating", "applying"]]
        runner.go.set()
        went = trio.current_time()
        with trio.fail_after(GATHER * 0.5):  # at once: long before another gather
            while len(recorder.messages) < 2:
                await recorder.came.wait()
        assert trio.current_time() - went < GATHER * 0.5
        assert recorder.messages[1] == ["verifying", "completed"]
        nursery.cancel_scope.cancel()
