"""A real control plane in the test's trio loop, raw clients of its two ports, and its log."""

from __future__ import annotations

import logging
from pathlib import Path

import attrs
import pytest
import trio

from tests.badinput.clients import ANSWER_TIMEOUT, CHANNEL_LIMIT
from tests.e2e.harness import FAST_CHANNEL, ControlPlane


@pytest.fixture
async def cp(nursery: trio.Nursery, tmp_path: Path) -> ControlPlane:
    """A control plane on the embedded SQLite store whose agent channel takes messages of at
    most :data:`CHANNEL_LIMIT` characters (a setting, made small here)."""
    # Raw agents send no heartbeats: their connections must not be closed as dead meanwhile.
    channel = attrs.evolve(FAST_CHANNEL, max_message_bytes=CHANNEL_LIMIT, dead_heartbeats=1000)
    plane = ControlPlane(nursery, tmp_path / "cp", channel=channel)
    await plane.start()
    return plane


class LogWatch(logging.Handler):
    """What the control plane logs (INFO and up), and a way to wait for a line."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        self._waiting: list[tuple[tuple[str, ...], trio.Event]] = []

    def emit(self, record: logging.LogRecord) -> None:
        line = f"{record.levelname} {record.getMessage()}"
        self.lines.append(line)
        for words, event in self._waiting:
            if all(word in line for word in words):
                event.set()

    def matching(self, *words: str) -> list[str]:
        return [line for line in self.lines if all(word in line for word in words)]

    async def wait_for(self, *words: str) -> str:
        """The first line with all ``words``, once it is logged."""
        if not self.matching(*words):
            event = trio.Event()
            self._waiting.append((words, event))
            with trio.fail_after(ANSWER_TIMEOUT):
                await event.wait()
        return self.matching(*words)[0]
