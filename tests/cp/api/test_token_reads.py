"""A request's token record is read by a read that began after the request came
(cp/api/token_reads.py): requests that come while a read is under way share the next one, and
a token revoked before a request came is refused to it, even while an older read is still under
way (on a real SQLite store; the store's read held once it has read)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio
import trio.testing

from tests.store.test_tokens import created, revoked, token
from transporter.config.store_spec import StoreSpec
from transporter.cp.api.token_reads import TokenReads
from transporter.security.tokens import TokenRecord
from transporter.store import Store, open_store


class HeldReads:
    """The real store's ``get_token``, counted; the first read waits for ``release`` once it
    has read."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.reads = 0
        self.release = trio.Event()

    async def __call__(self, token_id: str) -> TokenRecord | None:
        self.reads += 1
        found = await self.store.get_token(token_id)
        if self.reads == 1:
            await self.release.wait()
        return found


async def test_a_request_never_gets_a_record_read_before_it_came(tmp_path: Path) -> None:
    async with open_store(StoreSpec.sqlite_in(tmp_path)) as store:
        _, record = token("ci", at=1.0)
        await store.create_token(record, created(record))
        reads = HeldReads(store)
        tokens = TokenReads(reads)
        got: dict[str, Any] = {}

        async def request(name: str) -> None:
            found = await tokens.get(record.id)
            got[name] = found and found.revoked_at

        async with trio.open_nursery() as nursery:
            nursery.start_soon(request, "before")
            await trio.testing.wait_all_tasks_blocked()  # its read has read, and is held
            await store.revoke_token(record.id, 2.0, revoked(record, 2.0))
            nursery.start_soon(request, "after")
            nursery.start_soon(request, "after too")
            await trio.testing.wait_all_tasks_blocked()
            reads.release.set()
        assert got == {"before": None, "after": 2.0, "after too": 2.0}
        assert reads.reads == 2  # the two that came during the first read shared the next
        assert tokens._rounds == {}  # nothing kept once answered
