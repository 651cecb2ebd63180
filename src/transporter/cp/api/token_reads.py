"""The API tokens' records, read once for the requests that come together: the requests with
one token share a read of its record, as long as that read *began after* they came (rounds,
:mod:`transporter.rounds`). A request is never answered with a record read before it came, so
a token revoked (``transporter token revoke``, from another process or on another replica) is
refused by the next request, as before; only requests that wait together share one read. Under
load that is one store read for several requests of the same client (one event per POST from
several threads: fewer reads than requests), and alone it is the one read it always was.

No record is kept after its requests are answered by these reads. :class:`KeptTokens` keeps
records for the endpoints whose store write checks the token again (submissions:
:meth:`~transporter.store.base.EventStore.submit_many`'s ``tokens``), where a kept record still
lets a revocation hold at once.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Final

from transporter.rounds import Rounds
from transporter.security.tokens import TokenRecord

KEPT: Final = 1024
"""Token records :class:`KeptTokens` keeps; the longest unused is dropped first."""


class TokenReads:
    """Records by token id, read in rounds shared by the requests waiting for them."""

    def __init__(self, read: Callable[[str], Awaitable[TokenRecord | None]]) -> None:
        self._read = read
        self._rounds: dict[str, Rounds[TokenRecord | None]] = {}

    async def get(self, token_id: str) -> TokenRecord | None:
        """The record of ``token_id`` as read by a read that began after this call."""
        rounds = self._rounds.get(token_id)
        if rounds is None:
            read = self._read
            rounds = self._rounds[token_id] = Rounds(lambda: read(token_id))
        try:
            return await rounds.after_now()
        finally:
            if rounds.waiting == 0 and self._rounds.get(token_id) is rounds:
                del self._rounds[token_id]


class KeptTokens:
    """Records of tokens that were valid when last read, by id, for the endpoints whose store
    write checks the token again: such a request is admitted on the kept record (its secret
    still compared) without reading the store, and refused by its write if the token was
    revoked since. Only valid records are kept, at most :data:`KEPT` (the callers that send
    unknown tokens cannot fill it: those are never kept)."""

    def __init__(self, most: int = KEPT) -> None:
        self._most = most
        self._records: OrderedDict[str, TokenRecord] = OrderedDict()

    def get(self, token_id: str) -> TokenRecord | None:
        record = self._records.get(token_id)
        if record is not None:
            self._records.move_to_end(token_id)
        return record

    def saw(self, token_id: str, record: TokenRecord | None) -> None:
        """What a read of the store found for ``token_id``: kept when valid, else dropped."""
        if record is None or record.revoked:
            self._records.pop(token_id, None)
            return
        self._records[token_id] = record
        self._records.move_to_end(token_id)
        while len(self._records) > self._most:
            self._records.popitem(last=False)


__all__ = ["KeptTokens", "TokenReads"]
