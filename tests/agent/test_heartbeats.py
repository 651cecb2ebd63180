"""What a real agent session sends at rest, frame by frame, as a control plane of each protocol
sees it (a recording server over real TCP): on protocol 4 a heartbeat is one unsolicited pong
per interval and a ping only once 3/4 of the dead time passed since the last answer; on
protocol 3 a ``heartbeat`` message and a ping every interval."""

from __future__ import annotations

import json
from functools import partial

import attrs
import pytest
import trio

from tests.bed.harness import FAST_BACKOFF
from transporter.agent.conversation import paced
from transporter.agent.session import PING_AFTER, Session
from transporter.agent.worker import Reporter
from transporter.cp.framing import Upgrade
from transporter.protocol import codec, frames
from transporter.protocol.messages import Pace, Welcome
from transporter.protocol.model import AgentInfo, Event

INTERVAL = 0.1
DEAD_AFTER = 1.0
SEEN = 15
"""Heartbeats (pongs or ``heartbeat`` messages) recorded before the counts are compared."""


@attrs.define
class Recorder:
    """A control plane that welcomes the agent in ``protocol`` and notes what comes after;
    with ``pace``, sends a ``pace`` of it after the third beat."""

    protocol: int
    pace: tuple[float, float] | None = None
    beat_times: list[float] = attrs.field(factory=list)
    beats: int = 0
    pings: list[float] = attrs.field(factory=list)
    heartbeats: int = 0
    others: list[str] = attrs.field(factory=list)
    enough: trio.Event = attrs.field(factory=trio.Event)

    async def serve(self, stream: trio.SocketStream) -> None:
        upgrade = Upgrade(stream, max_message_bytes=1 << 20)
        assert await upgrade.request()
        await upgrade.accept()
        reader = frames.Reader(1 << 20)
        welcomed = False
        while not self.enough.is_set():
            found = reader.next()
            if found is None:
                reader.feed(await stream.receive_some(4096))
                continue
            opcode, value = found
            if opcode == frames.PING:
                self.pings.append(trio.current_time())
                await stream.send_all(frames.frame(frames.PONG, bytes(value)))  # type: ignore[arg-type]
            elif opcode == frames.PONG:
                self.beats += 1
                self.beat_times.append(trio.current_time())
                if self.pace is not None and self.beats == 3:
                    said = Pace(*self.pace)
                    await stream.send_all(frames.frame(frames.TEXT, codec.encode(said).encode()))
            elif not welcomed:  # the registration
                welcome = Welcome("agent-a", INTERVAL, DEAD_AFTER, protocol=self.protocol)
                await stream.send_all(frames.frame(frames.TEXT, codec.encode(welcome).encode()))
                welcomed = True
            elif json.loads(str(value))["type"] == "heartbeat":
                self.heartbeats += 1
            else:
                self.others.append(str(value))
            if self.beats + self.heartbeats >= SEEN:
                self.enough.set()


async def never(event: Event, report: Reporter) -> None:
    raise AssertionError(f"nothing is delivered here: {event.id}")


async def record(recorder: Recorder) -> None:
    """A real agent session dials ``recorder`` until it has seen enough."""
    async with trio.open_nursery() as nursery:
        serve = partial(trio.serve_tcp, recorder.serve, 0, host="127.0.0.1")
        listeners = await nursery.start(serve)
        port = listeners[0].socket.getsockname()[1]
        session = Session(
            AgentInfo("agent-a"), f"ws://127.0.0.1:{port}/ws", never, backoff=FAST_BACKOFF
        )
        nursery.start_soon(session.run)
        with trio.fail_after(30):
            await recorder.enough.wait()
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("protocol", [3, 4])
async def test_what_an_idle_agent_sends(protocol: int) -> None:
    recorder = Recorder(protocol)
    await record(recorder)
    assert recorder.others == []
    if protocol == 3:
        assert (recorder.beats, recorder.heartbeats) == (0, SEEN)
        assert len(recorder.pings) >= SEEN - 1  # one with each heartbeat
        return
    assert (recorder.beats, recorder.heartbeats) == (SEEN, 0)
    # 15 intervals: a ping once 3/4 of the dead time passed since the last answer
    assert 1 <= len(recorder.pings) <= 2, recorder.pings
    gaps = [b - a for a, b in zip(recorder.pings, recorder.pings[1:], strict=False)]
    assert all(gap >= DEAD_AFTER * PING_AFTER - INTERVAL for gap in gaps), gaps


async def test_a_pace_from_the_control_plane_slows_the_heartbeats() -> None:
    recorder = Recorder(4, pace=(0.4, 40.0))
    await record(recorder)
    gaps = [b - a for a, b in zip(recorder.beat_times, recorder.beat_times[1:], strict=False)]
    assert max(gaps[:2]) < 0.3  # at the welcome's 0.1 s
    assert min(gaps[4:]) >= 0.35, gaps  # then at the pace's 0.4 s (one beat may be on its way)


@pytest.mark.parametrize(
    ("said", "kept"),
    [
        ((5.0, 20.0), (5.0, 20.0)),
        ((5.0, 0.0), (5.0, 20.0)),  # no dead time said: four intervals
        ((0.0, 0.0), (0.05, 0.2)),  # no busy loop
        ((float("nan"), float("inf")), (5.0, 20.0)),
        ((1e9, 1e12), (300.0, 30000.0)),
        ((1.0, 0.5), (1.0, 1.0)),  # never dead before an interval
    ],
)
def test_the_pace_said_is_kept_within_bounds(
    said: tuple[float, float], kept: tuple[float, float]
) -> None:
    assert paced(*said) == kept
