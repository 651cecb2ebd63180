"""The SQLite store's :class:`~transporter.store.queue_store.QueueStore`: none. Queue mode is
producers appending to a stream on a server that every control-plane replica reads; one
process's file has no such server, so each call says that queue mode needs Redis."""

from __future__ import annotations

from typing import NoReturn

from transporter.store.base import QueueUnsupported
from transporter.store.queue_store import DeadLetter, DeadLetterPage, QueueEntry


def _unsupported() -> NoReturn:
    raise QueueUnsupported(
        "queue mode needs the Redis store (--store redis://…): the embedded store has no queue"
        " that producers could append to"
    )


class SQLiteQueue:
    async def queue_prepare(self) -> None:
        _unsupported()

    async def queue_read(self, consumer: str, *, count: int, block: float) -> list[QueueEntry]:
        _unsupported()

    async def queue_claim(self, consumer: str, *, idle: float, count: int) -> list[QueueEntry]:
        _unsupported()

    async def queue_forget(self, *, idle: float) -> int:
        _unsupported()

    async def queue_done(self, entry_id: str) -> None:
        _unsupported()

    async def queue_dead(self, entry_id: str, letter: DeadLetter) -> None:
        _unsupported()

    async def dead_letters(
        self, *, limit: int = 100, cursor: str | None = None, token_id: str | None = None
    ) -> DeadLetterPage:
        _unsupported()

    async def dead_letter_of(
        self, entry_id: str, *, token_id: str | None = None
    ) -> DeadLetter | None:
        _unsupported()
