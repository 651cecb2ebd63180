"""What ``transporter`` logs in the test's own process, kept, and a way to wait for a line: the
``logs`` fixture (tests/conftest.py) installs a :class:`LogWatch` for one test."""

from __future__ import annotations

import logging

import trio

WAIT_TIMEOUT = 10.0
"""A bound on waiting for a line that must come (the test fails rather than hangs)."""


class LogWatch(logging.Handler):
    """What ``transporter`` logs (INFO and up), and a way to wait for a line."""

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
            with trio.fail_after(WAIT_TIMEOUT):
                await event.wait()
        return self.matching(*words)[0]
