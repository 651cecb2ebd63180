"""From layout 1 of the Redis store, where one hash held each event's whole record (manifests
included) and every report rewrote it, to layout 2: the event apart from its progress.

It runs before a store's first call (opening does not reach the server), in every control plane,
and is safe when several run at once: records are moved in batches, each batch one script that
moves a record only if it is still as it was read (moved by another meanwhile, or changed by an
older control plane, it is left for the next round). ``P layout`` is set, and layout 1's hash
replaced by a string that fails an older control plane's writes, only when no record of layout
1 is left. Interrupted, it leaves each record moved or not, and the next run goes on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import coredis

from transporter.protocol.model import EventRecord
from transporter.store.base import StoreError
from transporter.store.json_rows import dump, load
from transporter.store.redis.keys import Keys
from transporter.store.redis.records import NumberedProgress
from transporter.store.redis.scripts import Scripts

LAYOUT = 2
BATCH = 100
"""Records moved by one script, about (HSCAN's COUNT is a hint)."""
FENCE = "moved to the event and progress hashes (layout 2): stop older control planes"


async def migrate(
    client: coredis.Redis[str],
    keys: Keys,
    scripts: Scripts,
    translated: Callable[[], AbstractContextManager[None]],
    *,
    batch: int = BATCH,
) -> None:
    """Bring the store to :data:`LAYOUT`; each round trip under ``translated()``."""
    cursor = 0
    while True:
        with translated():
            reply: Any = await scripts.migration_scan(
                keys=[keys.layout, keys.records], args=[cursor, batch]
            )
        if len(reply) == 1:
            _check(keys, reply[0])
            return
        cursor, found = int(reply[0]), list(reply[1])
        if found:
            with translated():
                await scripts.migration_move(
                    keys=[keys.records, keys.event, keys.progress], args=_moves(keys, found)
                )
        if cursor == 0:
            with translated():
                done: Any = await scripts.migration_finish(
                    keys=[keys.layout, keys.records], args=[str(LAYOUT), FENCE]
                )
            if done:
                return


def _moves(keys: Keys, found: list[str]) -> list[str]:
    """The move script's arguments for HSCAN's ``[id, record, id, record ...]``."""
    args: list[str] = []
    for event_id, text in zip(found[::2], found[1::2], strict=True):
        try:
            record = load(text, EventRecord)
        except StoreError as exc:
            raise StoreError(
                f"event {event_id!r} in {keys.records} cannot be moved to layout {LAYOUT}: {exc}"
            ) from exc
        digest = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()
        args += [event_id, digest, dump(record.event), dump(NumberedProgress.of(record))]
    return args


def _check(keys: Keys, layout: str) -> None:
    if layout != str(LAYOUT):
        raise StoreError(
            f"the Redis store at {keys.layout} has layout {layout!r}; this transporter knows"
            f" layout {LAYOUT} (written by a newer version?)"
        )
