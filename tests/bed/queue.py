"""Queue mode on a real redis-server: entries appended as a producer appends them, and waiting
until the control planes settled them (the queue empty, nothing pending in the group)."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import trio

from tests.bed.redis import RedisServer
from transporter.protocol.queue_entry import FORMAT_VERSION
from transporter.store.redis.queue_append import open_appender

QUEUE = "transporter:queue"
DEAD = "transporter:queue:dead"


def entry(body: dict[str, Any] | str, token: str | None) -> dict[str, str]:
    """An entry's fields as ``produce --mode queue`` writes them (``body`` as is when text)."""
    text = body if isinstance(body, str) else json.dumps(body)
    return {"v": FORMAT_VERSION, "body": text, "token": token or ""}


async def append(server: RedisServer, *entries: dict[str, str]) -> list[str]:
    """Append ``entries`` to the queue; their stream ids."""
    async with open_appender(server.url) as appender:
        return [await appender.append(fields) for fields in entries]


def redis_cli(server: RedisServer, *args: str) -> str:
    done = subprocess.run(
        ["redis-cli", "-p", str(server.port), *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def unsettled(server: RedisServer) -> tuple[int, int]:
    """Entries in the queue, and entries read but not settled (the group's pending count)."""
    length = int(redis_cli(server, "XLEN", QUEUE))
    pending = redis_cli(server, "XPENDING", QUEUE, "cp").splitlines()
    return length, int(pending[0]) if pending else 0


async def settled(server: RedisServer, *, within: float = 30.0) -> None:
    """Until the control planes settled every entry (each stored or dead-lettered, and
    deleted), within ``within`` seconds."""
    left = (-1, -1)
    try:
        with trio.fail_after(within):
            while True:
                left = await trio.to_thread.run_sync(unsettled, server)
                if left == (0, 0):
                    return
                await trio.sleep(0.05)
    except trio.TooSlowError:
        raise AssertionError(f"entries left unsettled (in the queue, pending): {left}") from None
